package tests

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const (
	testRelease   = "strata"
	testNamespace = "messaging"
	// fullname: a release named "strata" is not prefixed twice.
	fullname      = "strata"
	defaultImage  = "ghcr.io/strata-mq/strata:0.1.0"
	clusterDomain = "cluster.local"
)

// valueSets are the chart configurations under test. Each file under deploy/helm/ci must be
// listed here (TestChartCIValueFilesAreTested).
var valueSets = []valueSet{
	{name: "default", check: checkDefault},
	{name: "external-etcd", file: "external-etcd-values.yaml", check: checkExternalEtcd},
	{name: "auth-tls", file: "auth-tls-values.yaml", check: checkAuthTLS},
	{name: "offload-s3-existing-secret", file: "offload-s3-existing-secret-values.yaml", check: checkOffloadExistingSecret},
	{name: "offload-s3-chart-secret", file: "offload-s3-chart-secret-values.yaml", check: checkOffloadChartSecret},
}

func TestChartCIValueFilesAreTested(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(ciDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !slices.ContainsFunc(valueSets, func(vs valueSet) bool { return vs.file == filepath.Base(f) }) {
			t.Errorf("%s is not in valueSets: add it with its checks", f)
		}
	}
}

func TestChartLint(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			args := []string{"lint", chartDir, "--strict", "--kube-version", kubeVersion}
			if p := vs.valuesPath(); p != "" {
				args = append(args, "--values", p)
			}
			out, _, err := helm(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("helm lint:\n%s", out)
			}
			// --strict turns warnings into failures; [INFO] lines (e.g. "icon is recommended") remain.
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "[WARNING]") || strings.Contains(line, "[ERROR]") {
					t.Errorf("helm lint: %s", line)
				}
			}
		})
	}
}

func TestChartRender(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			m := render(t, vs, testRelease, testNamespace)
			v := vs.values(t)
			checkCommon(t, m, v)
			vs.check(t, m, v)
		})
	}
}

// checkCommon asserts what every configuration must satisfy.
func checkCommon(t *testing.T, m *manifest, v map[string]any) {
	t.Helper()
	seen := map[string]bool{}
	for _, o := range m.Objects {
		if o.Namespace != testNamespace {
			t.Errorf("%s: namespace %q, want the release namespace %q", o, o.Namespace, testNamespace)
		}
		key := o.Kind + "/" + o.Name
		if seen[key] {
			t.Errorf("%s rendered twice", key)
		}
		seen[key] = true
		if len(o.Name) > 63 {
			t.Errorf("%s: name longer than 63 characters", o)
		}
	}

	for _, w := range m.workloads() {
		checkPodTemplate(t, w)
	}
	checkServicesSelectPods(t, m)
	checkPDBs(t, m)
	checkBookies(t, m)
	checkBrokers(t, m)
	checkInitJob(t, m)
	checkNoInlinedSecrets(t, m, v)
	checkEtcdEndpointsAgree(t, m)
	if vs := lookup(v, "etcd.external.endpoints"); vs == nil {
		checkInternalEtcd(t, m)
	}
}

// checkPodTemplate: requests, non-root, hardened containers, probes (Jobs excepted), no init
// containers, known strata flags, and mounted files for file arguments.
func checkPodTemplate(t *testing.T, w workload) {
	t.Helper()
	spec := &w.Template.Spec
	if len(spec.InitContainers) > 0 {
		t.Errorf("%s: has init containers; start-up order must come from readiness and retries", w)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: mounts a ServiceAccount token it does not need", w)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Errorf("%s: uses host namespaces", w)
	}
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	for _, c := range spec.Containers {
		where := fmt.Sprintf("%s container %s", w, c.Name)
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			t.Errorf("%s: needs cpu and memory requests, has %v", where, c.Resources.Requests)
		}
		sc := c.SecurityContext
		if sc == nil {
			sc = &corev1.SecurityContext{}
		}
		nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
		if !nonRoot {
			t.Errorf("%s: runAsNonRoot is not true", where)
		}
		uid := sc.RunAsUser
		if uid == nil {
			uid = psc.RunAsUser
		}
		if uid != nil && *uid == 0 {
			t.Errorf("%s: runs as uid 0", where)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation is not false", where)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: root filesystem is writable", where)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s: does not drop all capabilities", where)
		}
		if (sc.SeccompProfile == nil || sc.SeccompProfile.Type == "") && (psc.SeccompProfile == nil || psc.SeccompProfile.Type == "") {
			t.Errorf("%s: no seccomp profile", where)
		}
		if w.Kind != "Job" {
			if c.LivenessProbe == nil || c.ReadinessProbe == nil {
				t.Errorf("%s: needs both liveness and readiness probes", where)
			}
			for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
				if p != nil && p.HTTPGet != nil && !containerHasPort(c, p.HTTPGet.Port) {
					t.Errorf("%s: probe %s on port %s the container does not declare", where, p.HTTPGet.Path, p.HTTPGet.Port.String())
				}
			}
		}
		if c.Image == "" {
			t.Errorf("%s: no image", where)
		}
		if c.Image == defaultImage || strings.Contains(c.Image, "/strata:") {
			env := make([]string, 0, len(c.Env))
			for _, e := range c.Env {
				env = append(env, e.Name)
			}
			checkStrataArgs(t, where, c.Args, env)
		}
		for _, a := range c.Args {
			_, val, _ := strings.Cut(a, "=")
			path := strings.TrimPrefix(val, "file://")
			if strings.HasPrefix(path, "/etc/strata/") && !pathMounted(c, path) {
				t.Errorf("%s: %s points into no volume mount", where, a)
			}
		}
	}
	// Every mount refers to a volume of the pod (or a volumeClaimTemplate, checked by the caller).
	for _, c := range spec.Containers {
		for _, vm := range c.VolumeMounts {
			if !slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name }) && vm.Name != "data" {
				t.Errorf("%s container %s: mounts unknown volume %s", w, c.Name, vm.Name)
			}
		}
	}
}

func containerHasPort(c corev1.Container, p intstr.IntOrString) bool {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return true
		}
	}
	return false
}

func pathMounted(c corev1.Container, path string) bool {
	for _, vm := range c.VolumeMounts {
		if strings.HasPrefix(path, strings.TrimSuffix(vm.MountPath, "/")+"/") {
			return true
		}
	}
	return false
}

// podsSelectedBy returns the workloads whose pod labels match a selector.
func podsSelectedBy(m *manifest, sel labels.Selector) []workload {
	var ws []workload
	for _, w := range m.workloads() {
		if sel.Matches(labels.Set(w.Template.Labels)) {
			ws = append(ws, w)
		}
	}
	return ws
}

func checkServicesSelectPods(t *testing.T, m *manifest) {
	t.Helper()
	for name, s := range m.Services {
		if len(s.Spec.Selector) == 0 {
			t.Errorf("Service %s: no selector", name)
			continue
		}
		ws := podsSelectedBy(m, labels.SelectorFromSet(s.Spec.Selector))
		if len(ws) != 1 || ws[0].Kind == "Job" {
			t.Errorf("Service %s: selects %v, want exactly one StatefulSet or Deployment", name, ws)
			continue
		}
		for _, p := range s.Spec.Ports {
			if !slices.ContainsFunc(ws[0].Template.Spec.Containers, func(c corev1.Container) bool { return containerHasPort(c, p.TargetPort) }) {
				t.Errorf("Service %s port %s: target port %s is not a port of %s", name, p.Name, p.TargetPort.String(), ws[0])
			}
		}
	}
}

func checkPDBs(t *testing.T, m *manifest) {
	t.Helper()
	for name, p := range m.PDBs {
		sel, err := metaSelector(p.Spec.Selector.MatchLabels)
		if err != nil {
			t.Fatal(err)
		}
		if ws := podsSelectedBy(m, sel); len(ws) != 1 {
			t.Errorf("PodDisruptionBudget %s selects %v, want one workload", name, ws)
		}
		if p.Spec.MaxUnavailable == nil && p.Spec.MinAvailable == nil {
			t.Errorf("PodDisruptionBudget %s: no budget", name)
		}
	}
	for _, c := range []string{"bookie", "broker"} {
		if !slices.ContainsFunc(names(m.PDBs), func(p string) bool { return p == fullname+"-"+c }) {
			t.Errorf("no PodDisruptionBudget for the %ss", c)
		}
	}
}

func metaSelector(ml map[string]string) (labels.Selector, error) {
	if len(ml) == 0 {
		return nil, fmt.Errorf("empty selector")
	}
	return labels.SelectorFromSet(ml), nil
}

func names[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// checkBookies: a StatefulSet with a data volumeClaimTemplate, anti-affinity, a headless
// Service publishing not-ready pods, and the pod's stable DNS name as advertised address.
func checkBookies(t *testing.T, m *manifest) {
	t.Helper()
	s := m.statefulSet(t, "bookie")
	if s == nil {
		t.Fatal("bookies are not a StatefulSet")
	}
	if !slices.ContainsFunc(s.Spec.VolumeClaimTemplates, func(p corev1.PersistentVolumeClaim) bool { return p.Name == "data" }) {
		t.Errorf("bookie StatefulSet: no data volumeClaimTemplate")
	}
	c := s.Spec.Template.Spec.Containers[0]
	if !slices.ContainsFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.Name == "data" }) {
		t.Errorf("bookie container does not mount its data volume")
	}
	dataDir, _ := flagValue(c.Args, "data-dir")
	if !pathMounted(c, dataDir+"/x") {
		t.Errorf("bookie --data-dir=%s is not on the data volume", dataDir)
	}
	checkAntiAffinity(t, "bookie", s.Spec.Template)
	if s.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("bookie StatefulSet: podManagementPolicy %q, want Parallel", s.Spec.PodManagementPolicy)
	}
	svc := m.Services[s.Spec.ServiceName]
	if svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
		t.Fatalf("bookie StatefulSet: serviceName %q is not a headless Service publishing not-ready addresses", s.Spec.ServiceName)
	}
	want := fmt.Sprintf("$(POD_NAME).%s.%s.svc.%s:3181", svc.Name, testNamespace, clusterDomain)
	if got, _ := flagValue(c.Args, "advertised-address"); got != want {
		t.Errorf("bookie --advertised-address=%q, want the stable pod DNS name %q", got, want)
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
	}) {
		t.Errorf("bookie: POD_NAME is not the pod name")
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("bookie readiness probe is not GET /readyz")
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("bookie liveness probe is not GET /healthz")
	}
}

func checkAntiAffinity(t *testing.T, component string, tpl corev1.PodTemplateSpec) {
	t.Helper()
	a := tpl.Spec.Affinity
	if a == nil || a.PodAntiAffinity == nil {
		t.Errorf("%s pods: no pod anti-affinity", component)
		return
	}
	var terms []corev1.PodAffinityTerm
	terms = append(terms, a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution...)
	for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		terms = append(terms, w.PodAffinityTerm)
	}
	for _, term := range terms {
		if term.LabelSelector != nil && labels.SelectorFromSet(term.LabelSelector.MatchLabels).Matches(labels.Set(tpl.Labels)) && term.TopologyKey != "" {
			return
		}
	}
	t.Errorf("%s pods: anti-affinity does not select the %s pods themselves", component, component)
}

// checkBrokers: a Deployment with no persistent storage, probes on /readyz and /healthz, and a
// Service for gRPC 6650 and HTTP 8080.
func checkBrokers(t *testing.T, m *manifest) {
	t.Helper()
	d := m.deployment(t, "broker")
	if d == nil {
		t.Fatal("brokers are not a Deployment")
	}
	if m.statefulSet(t, "broker") != nil {
		t.Errorf("brokers must not be a StatefulSet")
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.PersistentVolumeClaim != nil || v.Ephemeral != nil || v.HostPath != nil {
			t.Errorf("broker volume %s is persistent storage; brokers are stateless", v.Name)
		}
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("broker readiness probe is not GET /readyz")
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("broker liveness probe is not GET /healthz")
	}
	svc := m.Services[fullname+"-broker"]
	if svc == nil {
		t.Fatal("no broker Service")
	}
	ports := map[int32]string{}
	for _, p := range svc.Spec.Ports {
		ports[p.Port] = p.TargetPort.String()
	}
	if ports[6650] != "grpc" || ports[8080] != "http" {
		t.Errorf("broker Service ports %v, want 6650→grpc and 8080→http", ports)
	}
	for name, h := range m.HPAs {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.Name != d.Name || ref.APIVersion != "apps/v1" {
			t.Errorf("HPA %s targets %v, want the broker Deployment", name, ref)
		}
		if d.Spec.Replicas != nil {
			t.Errorf("broker Deployment sets replicas while an HPA scales it (every upgrade would reset the scale)")
		}
	}
}

// checkInitJob: an idempotent `strata init-cluster` in a plain Job named after the revision.
func checkInitJob(t *testing.T, m *manifest) {
	t.Helper()
	j := m.Jobs[fullname+"-init-1"]
	if j == nil {
		t.Fatalf("no init Job named %s-init-<revision>; have %v", fullname, names(m.Jobs))
	}
	if len(m.Jobs) != 1 {
		t.Errorf("want one Job, have %v", names(m.Jobs))
	}
	for k := range j.Annotations {
		if strings.HasPrefix(k, "helm.sh/hook") {
			t.Errorf("init Job is a Helm hook (%s): hooks deadlock `helm install --wait`", k)
		}
	}
	if j.Spec.BackoffLimit == nil {
		t.Errorf("init Job: no backoffLimit")
	}
	if p := j.Spec.Template.Spec.RestartPolicy; p != corev1.RestartPolicyOnFailure && p != corev1.RestartPolicyNever {
		t.Errorf("init Job: restartPolicy %q", p)
	}
	args := j.Spec.Template.Spec.Containers[0].Args
	if len(args) == 0 || args[0] != "init-cluster" {
		t.Errorf("init Job runs %v, want strata init-cluster", args)
	}
	host := fmt.Sprintf("%s-broker.%s.svc.%s", fullname, testNamespace, clusterDomain)
	if u, _ := flagValue(args, "service-url"); !strings.HasSuffix(u, "://"+host+":8080") {
		t.Errorf("init Job --service-url=%s, want the broker Service's URL", u)
	}
	if u, _ := flagValue(args, "broker-service-url"); u != host+":6650" {
		t.Errorf("init Job --broker-service-url=%s, want %s:6650", u, host)
	}
}

// checkNoInlinedSecrets: secret values given to the chart appear only in Secrets, and secret
// environment variables are Secret references.
func checkNoInlinedSecrets(t *testing.T, m *manifest, v map[string]any) {
	t.Helper()
	var secrets []string
	for _, p := range []string{"offload.s3.credentials.accessKeyId", "offload.s3.credentials.secretAccessKey", "auth.token.value"} {
		if s, ok := lookup(v, p).(string); ok && s != "" {
			secrets = append(secrets, s)
		}
	}
	for _, o := range m.Objects {
		if o.Kind == "Secret" {
			continue
		}
		raw := string(o.Raw)
		for _, s := range secrets {
			if strings.Contains(raw, s) || strings.Contains(raw, base64.StdEncoding.EncodeToString([]byte(s))) {
				t.Errorf("%s contains a secret value given in the values; it must come from a Secret", o)
			}
		}
	}
	secretish := regexp.MustCompile(`(?i)(secret|password|access_key|token|credential)`)
	notSecret := map[string]bool{"ETCD_INITIAL_CLUSTER_TOKEN": true} // a cluster id, not a credential
	for _, w := range m.workloads() {
		for _, c := range w.Template.Spec.Containers {
			for _, e := range c.Env {
				if secretish.MatchString(e.Name) && !notSecret[e.Name] && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
					t.Errorf("%s container %s: env %s must be a secretKeyRef", w, c.Name, e.Name)
				}
			}
			for _, a := range c.Args {
				if strings.HasPrefix(a, "--offload-s3-access-key") || strings.HasPrefix(a, "--offload-s3-secret-key") {
					t.Errorf("%s container %s: S3 credentials passed as a flag (%s...)", w, c.Name, a[:24])
				}
			}
		}
	}
}

// checkEtcdEndpointsAgree: every Strata process talks to the same etcd.
func checkEtcdEndpointsAgree(t *testing.T, m *manifest) {
	t.Helper()
	var first string
	for _, w := range m.workloads() {
		for _, c := range w.Template.Spec.Containers {
			ep, ok := flagValue(c.Args, "etcd-endpoints")
			if !ok {
				continue
			}
			if first == "" {
				first = ep
			} else if ep != first {
				t.Errorf("%s uses --etcd-endpoints=%s, others %s", w, ep, first)
			}
		}
	}
	if first == "" {
		t.Errorf("no container passes --etcd-endpoints")
	}
}

func checkInternalEtcd(t *testing.T, m *manifest) {
	t.Helper()
	s := m.statefulSet(t, "etcd")
	if s == nil {
		t.Fatal("no etcd StatefulSet")
	}
	if s.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("etcd must start all members at once (Parallel); OrderedReady deadlocks before quorum")
	}
	if len(s.Spec.VolumeClaimTemplates) == 0 {
		t.Errorf("etcd StatefulSet: no volumeClaimTemplates")
	}
	svc := m.Services[s.Spec.ServiceName]
	if svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
		t.Errorf("etcd serviceName %q is not a headless Service publishing not-ready addresses", s.Spec.ServiceName)
	}
	// The endpoints Strata uses are the members' stable names.
	var want []string
	for i := 0; i < int(*s.Spec.Replicas); i++ {
		want = append(want, fmt.Sprintf("%s-%d.%s.%s.svc.%s:2379", s.Name, i, s.Spec.ServiceName, testNamespace, clusterDomain))
	}
	d := m.deployment(t, "broker")
	if got, _ := flagValue(d.Spec.Template.Spec.Containers[0].Args, "etcd-endpoints"); got != strings.Join(want, ",") {
		t.Errorf("broker --etcd-endpoints=%s, want %s", got, strings.Join(want, ","))
	}
	checkAntiAffinity(t, "etcd", s.Spec.Template)
	if m.PDBs[s.Name] == nil {
		t.Errorf("no PodDisruptionBudget for etcd")
	}
}

// ---- per value set ----

func brokerArgs(t *testing.T, m *manifest) []string {
	t.Helper()
	return m.deployment(t, "broker").Spec.Template.Spec.Containers[0].Args
}

func wantArgs(t *testing.T, where string, args []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(args, w) {
			t.Errorf("%s: missing %s in %v", where, w, args)
		}
	}
}

func checkDefault(t *testing.T, m *manifest, _ map[string]any) {
	if s := m.statefulSet(t, "etcd"); s == nil || *s.Spec.Replicas != 3 {
		t.Errorf("default etcd: want a 3-member StatefulSet")
	}
	if s := m.statefulSet(t, "bookie"); *s.Spec.Replicas != 3 {
		t.Errorf("default bookies: %d, want 3", *s.Spec.Replicas)
	}
	if d := m.deployment(t, "broker"); d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("default brokers: want 2 replicas")
	}
	if len(m.HPAs)+len(m.NetworkPolicies)+len(m.ServiceMonitors)+len(m.Secrets) != 0 {
		t.Errorf("defaults render optional objects: %d HPA, %d NetworkPolicy, %d ServiceMonitor, %d Secret",
			len(m.HPAs), len(m.NetworkPolicies), len(m.ServiceMonitors), len(m.Secrets))
	}
	for _, a := range brokerArgs(t, m) {
		if strings.HasPrefix(a, "--tls-") || strings.HasPrefix(a, "--auth") || strings.HasPrefix(a, "--offload") {
			t.Errorf("defaults pass %s", a)
		}
	}
	for _, c := range m.StatefulSets[fullname+"-bookie"].Spec.Template.Spec.Containers {
		if c.Image != defaultImage {
			t.Errorf("bookie image %s, want %s (the chart's appVersion)", c.Image, defaultImage)
		}
	}
}

func checkExternalEtcd(t *testing.T, m *manifest, v map[string]any) {
	if m.statefulSet(t, "etcd") != nil {
		t.Errorf("external etcd: the chart still deploys etcd")
	}
	for name, s := range m.Services {
		if componentOf(s.Labels) == "etcd" {
			t.Errorf("external etcd: Service %s rendered", name)
		}
	}
	var eps []string
	for _, e := range lookup(v, "etcd.external.endpoints").([]any) {
		eps = append(eps, e.(string))
	}
	var cs []string
	for _, e := range lookup(v, "configStore.endpoints").([]any) {
		cs = append(cs, e.(string))
	}
	args := brokerArgs(t, m)
	wantArgs(t, "broker", args,
		"--etcd-endpoints="+strings.Join(eps, ","),
		"--config-store-endpoints="+strings.Join(cs, ","),
		"--cluster=eu-west-1",
		"--default-ensemble-size=3", "--default-write-quorum=3", "--default-ack-quorum=2")
	wantArgs(t, "init Job", m.Jobs[fullname+"-init-1"].Spec.Template.Spec.Containers[0].Args,
		"--cluster=eu-west-1", "--config-store-endpoints="+strings.Join(cs, ","))
	b := m.statefulSet(t, "bookie")
	if *b.Spec.Replicas != 4 {
		t.Errorf("bookies: %d, want 4", *b.Spec.Replicas)
	}
	aa := b.Spec.Template.Spec.Affinity.PodAntiAffinity
	if len(aa.RequiredDuringSchedulingIgnoredDuringExecution) != 0 || len(aa.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
		aa.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != "topology.kubernetes.io/zone" {
		t.Errorf("bookies: want soft anti-affinity across zones, have %+v", aa)
	}
	if sc := b.Spec.VolumeClaimTemplates[0].Spec.StorageClassName; sc == nil || *sc != "fast-ssd" {
		t.Errorf("bookie storage class: %v", sc)
	}
	if d := m.deployment(t, "broker"); len(d.Spec.Template.Spec.Tolerations) != 1 || d.Spec.Template.Spec.NodeSelector["node-role/strata"] != "true" {
		t.Errorf("broker scheduling values not applied")
	}
}

func checkAuthTLS(t *testing.T, m *manifest, _ map[string]any) {
	args := brokerArgs(t, m)
	wantArgs(t, "broker", args,
		"--authentication-enabled=true", "--authorization-enabled=true",
		"--token-public-key=file:///etc/strata/auth/public.key", "--superuser-roles=admin,ops",
		"--tls-cert-file=/etc/strata/tls/tls.crt", "--tls-key-file=/etc/strata/tls/tls.key",
		"--tls-trust-certs-file=/etc/strata/tls/ca.crt", "--tls-require-client-cert=true")
	d := m.deployment(t, "broker")
	vols := map[string]string{}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			vols[v.Name] = v.Secret.SecretName
		}
	}
	if vols["auth"] != "strata-token-public-key" || vols["tls"] != "strata-broker-tls" {
		t.Errorf("broker secret volumes %v, want the existing auth and TLS Secrets", vols)
	}
	if len(m.Secrets) != 0 {
		t.Errorf("existing Secrets given, but the chart creates %v", names(m.Secrets))
	}
	c := d.Spec.Template.Spec.Containers[0]
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
		if p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("broker probe %s uses %s with TLS on", p.HTTPGet.Path, p.HTTPGet.Scheme)
		}
	}
	if u, _ := flagValue(m.Jobs[fullname+"-init-1"].Spec.Template.Spec.Containers[0].Args, "service-url"); !strings.HasPrefix(u, "https://") {
		t.Errorf("init Job --service-url=%s, want https with TLS on", u)
	}
	if len(m.ServiceMonitors) != 2 {
		t.Errorf("ServiceMonitors: %v, want broker and bookie", names(m.ServiceMonitors))
	}
	for name, sm := range m.ServiceMonitors {
		if sm.Labels["release"] != "kube-prometheus-stack" {
			t.Errorf("ServiceMonitor %s lacks the configured labels", name)
		}
		sel := labels.SelectorFromSet(sm.Spec.Selector.MatchLabels)
		n := 0
		for _, s := range m.Services {
			if sel.Matches(labels.Set(s.Labels)) && slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == sm.Spec.Endpoints[0].Port }) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("ServiceMonitor %s matches %d Services with port %s, want 1", name, n, sm.Spec.Endpoints[0].Port)
		}
		// Brokers answer /metrics only with a token when authentication is on.
		bt := sm.Spec.Endpoints[0].BearerTokenSecret
		if broker := name == fullname+"-broker"; broker && (bt == nil || bt.Name != "strata-scraper-token" || bt.Key != "token") {
			t.Errorf("broker ServiceMonitor bearerTokenSecret %+v, want strata-scraper-token/token", bt)
		} else if !broker && bt != nil {
			t.Errorf("ServiceMonitor %s sends a token: %+v", name, bt)
		}
	}
	for _, c := range []string{"broker", "bookie", "etcd"} {
		np := m.NetworkPolicies[fullname+"-"+c]
		if np == nil {
			t.Errorf("no NetworkPolicy for %s", c)
			continue
		}
		sel := labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels)
		if ws := podsSelectedBy(m, sel); len(ws) != 1 {
			t.Errorf("NetworkPolicy %s selects %v", np.Name, ws)
		}
	}
}

func checkOffloadExistingSecret(t *testing.T, m *manifest, _ map[string]any) {
	wantArgs(t, "broker", brokerArgs(t, m),
		"--offload-driver=s3", "--offload-s3-endpoint=https://s3.eu-west-1.amazonaws.com",
		"--offload-s3-bucket=strata-offload", "--offload-s3-region=eu-west-1",
		"--offload-block-size=67108864", "--offload-read-ahead=32M", "--offload-s3-path-style=true",
		"--offload-threshold=10G", "--offload-deletion-lag=1h")
	wantSecretEnv(t, m, "strata-s3-credentials", "access-key-id", "secret-access-key")
	if len(m.Secrets) != 0 {
		t.Errorf("existingSecret given, but the chart creates %v", names(m.Secrets))
	}
	h := m.HPAs[fullname+"-broker"]
	if h == nil {
		t.Fatal("no broker HPA")
	}
	if *h.Spec.MinReplicas != 2 || h.Spec.MaxReplicas != 8 || len(h.Spec.Metrics) != 2 {
		t.Errorf("HPA: min %d max %d metrics %d, want 2, 8, 2", *h.Spec.MinReplicas, h.Spec.MaxReplicas, len(h.Spec.Metrics))
	}
}

func checkOffloadChartSecret(t *testing.T, m *manifest, v map[string]any) {
	name := fullname + "-offload"
	s := m.Secrets[name]
	if s == nil {
		t.Fatalf("no chart-created S3 Secret %s; have %v", name, names(m.Secrets))
	}
	for key, path := range map[string]string{"AWS_ACCESS_KEY_ID": "offload.s3.credentials.accessKeyId", "AWS_SECRET_ACCESS_KEY": "offload.s3.credentials.secretAccessKey"} {
		if string(s.Data[key]) != lookup(v, path).(string) {
			t.Errorf("Secret %s: %s does not hold %s", name, key, path)
		}
	}
	wantSecretEnv(t, m, name, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
	tok := m.Secrets[fullname+"-token-key"]
	if tok == nil || string(tok.Data["secret.key"]) != lookup(v, "auth.token.value").(string) {
		t.Errorf("no chart-created token Secret holding auth.token.value under secret.key")
	}
	wantArgs(t, "broker", brokerArgs(t, m), "--token-secret-key=file:///etc/strata/auth/secret.key")
	if e := m.statefulSet(t, "etcd"); *e.Spec.Replicas != 1 {
		t.Errorf("etcd replicas %d, want 1", *e.Spec.Replicas)
	}
	if j := m.Jobs[fullname+"-init-1"]; j.Spec.TTLSecondsAfterFinished != nil {
		t.Errorf("initJob.ttlSecondsAfterFinished=null still sets a TTL")
	}
}

// wantSecretEnv: the broker gets both S3 keys from the named Secret, by secretKeyRef.
func wantSecretEnv(t *testing.T, m *manifest, secret, idKey, secretKey string) {
	t.Helper()
	env := map[string]*corev1.EnvVarSource{}
	for _, e := range m.deployment(t, "broker").Spec.Template.Spec.Containers[0].Env {
		if e.Value != "" && strings.HasPrefix(e.Name, "AWS_") {
			t.Errorf("broker env %s is inlined", e.Name)
		}
		env[e.Name] = e.ValueFrom
	}
	for name, key := range map[string]string{"AWS_ACCESS_KEY_ID": idKey, "AWS_SECRET_ACCESS_KEY": secretKey} {
		src := env[name]
		if src == nil || src.SecretKeyRef == nil || src.SecretKeyRef.Name != secret || src.SecretKeyRef.Key != key {
			t.Errorf("broker env %s = %+v, want secretKeyRef %s/%s", name, src, secret, key)
		}
	}
}

// ---- schema and template rejections ----

// TestChartRejectsBadValues renders each file under testdata/bad, which starts with
// "# expect-error: <text>", and wants helm to fail with that text.
func TestChartRejectsBadValues(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(badDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad value sets in %s (%v)", badDir, err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(b), "\n")
			want, ok := strings.CutPrefix(first, "# expect-error: ")
			if !ok {
				t.Fatalf("%s: first line must be `# expect-error: <text>`", f)
			}
			_, stderr, err := helm(t, "template", testRelease, chartDir, "--namespace", testNamespace, "--kube-version", kubeVersion, "--values", f)
			if err == nil {
				t.Fatalf("helm template accepted %s; want an error containing %q", filepath.Base(f), want)
			}
			if !strings.Contains(stderr, strings.TrimSpace(want)) {
				t.Fatalf("helm template failed, but not with %q:\n%s", want, stderr)
			}
		})
	}
}
