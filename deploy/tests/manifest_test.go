package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// valueSet is one configuration of the chart that every chart test renders: lint, render,
// strict decoding, property checks and the install into a real API server.
type valueSet struct {
	name string
	file string // under deploy/helm/ci; "" for the chart defaults
	// check asserts what this configuration must produce, beyond the checks every set gets.
	check func(t *testing.T, m *manifest, v map[string]any)
}

// valuesPath is the -f argument of a value set, or "".
func (vs valueSet) valuesPath() string {
	if vs.file == "" {
		return ""
	}
	return filepath.Join(ciDir, vs.file)
}

// values returns the set's values file as a map (empty for the defaults).
func (vs valueSet) values(t *testing.T) map[string]any {
	t.Helper()
	v := map[string]any{}
	if vs.file == "" {
		return v
	}
	b, err := os.ReadFile(vs.valuesPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", vs.file, err)
	}
	return v
}

// object is one rendered Kubernetes object.
type object struct {
	APIVersion, Kind, Name, Namespace string
	Raw                               []byte // the document as JSON
	Obj                               any    // a typed k8s.io/api object, or *serviceMonitor
}

func (o object) String() string { return fmt.Sprintf("%s %s/%s", o.Kind, o.Namespace, o.Name) }

// manifest is everything a render produced, by kind.
type manifest struct {
	Objects         []object
	StatefulSets    map[string]*appsv1.StatefulSet
	Deployments     map[string]*appsv1.Deployment
	Jobs            map[string]*batchv1.Job
	Services        map[string]*corev1.Service
	Secrets         map[string]*corev1.Secret
	ServiceAccounts map[string]*corev1.ServiceAccount
	PDBs            map[string]*policyv1.PodDisruptionBudget
	HPAs            map[string]*autoscalingv2.HorizontalPodAutoscaler
	NetworkPolicies map[string]*networkingv1.NetworkPolicy
	ServiceMonitors map[string]*serviceMonitor
}

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor the chart uses. The
// chart's objects must decode into it with no unknown field.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames,omitempty"`
			Any        bool     `json:"any,omitempty"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port              string `json:"port"`
			Path              string `json:"path,omitempty"`
			Scheme            string `json:"scheme,omitempty"`
			Interval          string `json:"interval,omitempty"`
			ScrapeTimeout     string `json:"scrapeTimeout,omitempty"`
			BearerTokenSecret *struct {
				Name string `json:"name"`
				Key  string `json:"key"`
			} `json:"bearerTokenSecret,omitempty"`
			TLSConfig *struct {
				InsecureSkipVerify bool   `json:"insecureSkipVerify,omitempty"`
				CAFile             string `json:"caFile,omitempty"`
				ServerName         string `json:"serverName,omitempty"`
			} `json:"tlsConfig,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// The only kinds the chart may produce, each decoded into its API type. A new kind in the chart
// must be added here, with the type it must decode into.
var (
	scheme           = runtime.NewScheme()
	strictDecoder    runtime.Decoder
	allowedKinds     = map[string]bool{}
	serviceMonitorGV = "monitoring.coreos.com/v1"
)

func init() {
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, policyv1.AddToScheme,
		autoscalingv2.AddToScheme, networkingv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	// EnableStrict: unknown and duplicate fields are errors, not silently dropped.
	strictDecoder = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	for _, k := range []string{
		"v1/ServiceAccount", "v1/Secret", "v1/Service",
		"apps/v1/StatefulSet", "apps/v1/Deployment", "batch/v1/Job",
		"policy/v1/PodDisruptionBudget", "autoscaling/v2/HorizontalPodAutoscaler",
		"networking.k8s.io/v1/NetworkPolicy", serviceMonitorGV + "/ServiceMonitor",
	} {
		allowedKinds[k] = true
	}
}

// parseManifest splits a multi-document YAML stream and strictly decodes every object.
func parseManifest(stream []byte) (*manifest, error) {
	m := &manifest{
		StatefulSets: map[string]*appsv1.StatefulSet{}, Deployments: map[string]*appsv1.Deployment{},
		Jobs: map[string]*batchv1.Job{}, Services: map[string]*corev1.Service{},
		Secrets: map[string]*corev1.Secret{}, ServiceAccounts: map[string]*corev1.ServiceAccount{},
		PDBs: map[string]*policyv1.PodDisruptionBudget{}, HPAs: map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		NetworkPolicies: map[string]*networkingv1.NetworkPolicy{}, ServiceMonitors: map[string]*serviceMonitor{},
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var errs []error
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		// YAMLToJSONStrict rejects duplicate keys, which plain YAML decoding keeps silently.
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			errs = append(errs, fmt.Errorf("invalid YAML: %w\n%s", err, doc))
			continue
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue // an empty document (comments only)
		}
		obj, err := decodeObject(js)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.add(obj)
	}
	return m, errors.Join(errs...)
}

func decodeObject(js []byte) (object, error) {
	var tm struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        struct{ Name, Namespace string } `json:"metadata"`
	}
	if err := json.Unmarshal(js, &tm); err != nil {
		return object{}, err
	}
	o := object{APIVersion: tm.APIVersion, Kind: tm.Kind, Name: tm.Metadata.Name, Namespace: tm.Metadata.Namespace, Raw: js}
	key := tm.APIVersion + "/" + tm.Kind
	if !allowedKinds[key] {
		return o, fmt.Errorf("%s: kind %s is not one the tests know how to check (add it to allowedKinds)", o, key)
	}
	if o.Name == "" {
		return o, fmt.Errorf("%s: no metadata.name", key)
	}
	if tm.APIVersion == serviceMonitorGV {
		sm := &serviceMonitor{}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(sm); err != nil {
			return o, fmt.Errorf("%s: %w", o, err)
		}
		o.Obj = sm
		return o, nil
	}
	obj, gvk, err := strictDecoder.Decode(js, nil, nil)
	if err != nil {
		return o, fmt.Errorf("%s does not decode strictly into its API type: %w", o, err)
	}
	if got := gvk.GroupVersion().String() + "/" + gvk.Kind; got != key {
		return o, fmt.Errorf("%s decoded as %s", o, got)
	}
	o.Obj = obj
	return o, nil
}

func (m *manifest) add(o object) {
	m.Objects = append(m.Objects, o)
	switch x := o.Obj.(type) {
	case *appsv1.StatefulSet:
		m.StatefulSets[o.Name] = x
	case *appsv1.Deployment:
		m.Deployments[o.Name] = x
	case *batchv1.Job:
		m.Jobs[o.Name] = x
	case *corev1.Service:
		m.Services[o.Name] = x
	case *corev1.Secret:
		m.Secrets[o.Name] = x
	case *corev1.ServiceAccount:
		m.ServiceAccounts[o.Name] = x
	case *policyv1.PodDisruptionBudget:
		m.PDBs[o.Name] = x
	case *autoscalingv2.HorizontalPodAutoscaler:
		m.HPAs[o.Name] = x
	case *networkingv1.NetworkPolicy:
		m.NetworkPolicies[o.Name] = x
	case *serviceMonitor:
		m.ServiceMonitors[o.Name] = x
	}
}

// workload is a pod template with the object that owns it.
type workload struct {
	Kind, Name string
	Template   *corev1.PodTemplateSpec
}

func (w workload) String() string { return w.Kind + " " + w.Name }

// workloads lists every pod template in the manifest.
func (m *manifest) workloads() []workload {
	var ws []workload
	for n, s := range m.StatefulSets {
		ws = append(ws, workload{"StatefulSet", n, &s.Spec.Template})
	}
	for n, d := range m.Deployments {
		ws = append(ws, workload{"Deployment", n, &d.Spec.Template})
	}
	for n, j := range m.Jobs {
		ws = append(ws, workload{"Job", n, &j.Spec.Template})
	}
	return ws
}

// component returns the single object of a kind whose component label is c, or nil.
func componentOf(labels map[string]string) string { return labels["app.kubernetes.io/component"] }

func (m *manifest) statefulSet(t *testing.T, component string) *appsv1.StatefulSet {
	t.Helper()
	var found *appsv1.StatefulSet
	for _, s := range m.StatefulSets {
		if componentOf(s.Labels) == component {
			if found != nil {
				t.Fatalf("two %s StatefulSets", component)
			}
			found = s
		}
	}
	return found
}

func (m *manifest) deployment(t *testing.T, component string) *appsv1.Deployment {
	t.Helper()
	var found *appsv1.Deployment
	for _, d := range m.Deployments {
		if componentOf(d.Labels) == component {
			if found != nil {
				t.Fatalf("two %s Deployments", component)
			}
			found = d
		}
	}
	return found
}

// render runs `helm template` for a value set and decodes the result.
func render(t *testing.T, vs valueSet, release, namespace string, extra ...string) *manifest {
	t.Helper()
	out := renderRaw(t, vs, release, namespace, extra...)
	m, err := parseManifest([]byte(out))
	if err != nil {
		t.Fatalf("value set %s: %v", vs.name, err)
	}
	return m
}

func renderRaw(t *testing.T, vs valueSet, release, namespace string, extra ...string) string {
	t.Helper()
	args := []string{"template", release, chartDir, "--namespace", namespace, "--kube-version", kubeVersion}
	if p := vs.valuesPath(); p != "" {
		args = append(args, "--values", p)
	}
	args = append(args, extra...)
	out, stderr, err := helm(t, args...)
	if err != nil {
		t.Fatalf("value set %s: %v", vs.name, err)
	}
	if strings.TrimSpace(stderr) != "" {
		t.Errorf("value set %s: helm template wrote to stderr:\n%s", vs.name, stderr)
	}
	return out
}

// lookup reads a nested value from a values map ("a.b.c"); nil when absent.
func lookup(v map[string]any, path string) any {
	var cur any = v
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}
