package tests

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestHelmInstallIntoAPIServer installs every value set into a real kube-apiserver, each in its
// own namespace enforcing the restricted Pod Security Standard, and checks that the install
// reports no error or warning, that every rendered object exists on the server, that an upgrade
// replaces the init Job cleanly, and that uninstall removes everything.
func TestHelmInstallIntoAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and kube-apiserver; skipped with -short")
	}
	requireTool(t, "helm")
	k := startKubeAPI(t)
	k.installServiceMonitorCRD(t)

	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			ns := "strata-" + vs.name
			k.createNamespace(t, ns)
			kc := "--kubeconfig=" + k.Kubeconfig

			args := []string{"install", testRelease, chartDir, "--namespace", ns, kc, "--timeout", "2m"}
			if p := vs.valuesPath(); p != "" {
				args = append(args, "--values", p)
			}
			stdout, stderr, err := helm(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			checkQuietHelm(t, "install", stdout, stderr)
			t.Logf("helm install output (NOTES):\n%s", stdout)

			// What helm installed is what `helm template` renders for the same release.
			installed := helmManifest(t, k, ns)
			want := render(t, vs, testRelease, ns)
			if got, exp := objectKeys(installed), objectKeys(want); !slices.Equal(got, exp) {
				t.Errorf("installed objects %v\nwant (helm template) %v", got, exp)
			}
			checkObjectsExist(t, k, installed, true)

			if vs.name == "default" {
				checkUpgrade(t, k, ns)
				installed = helmManifest(t, k, ns)
			}

			stdout, stderr, err = helm(t, "uninstall", testRelease, "--namespace", ns, kc, "--wait", "--timeout", "1m")
			if err != nil {
				t.Fatal(err)
			}
			checkQuietHelm(t, "uninstall", "", stderr)
			checkObjectsExist(t, k, installed, false)
		})
	}
}

// checkUpgrade upgrades the release (a new image tag) and checks that the new revision's init
// Job replaced the old one instead of patching it (a Job's pod template is immutable).
func checkUpgrade(t *testing.T, k *kubeAPI, ns string) {
	t.Helper()
	stdout, stderr, err := helm(t, "upgrade", testRelease, chartDir, "--namespace", ns,
		"--kubeconfig="+k.Kubeconfig, "--set", "image.tag=0.1.1", "--timeout", "2m")
	if err != nil {
		t.Fatal(err)
	}
	checkQuietHelm(t, "upgrade", stdout, stderr)
	jobs := "/apis/batch/v1/namespaces/" + ns + "/jobs/"
	if code, _, err := k.do("GET", jobs+fullname+"-init-2", nil); err != nil || code != http.StatusOK {
		t.Errorf("after upgrade: init Job of revision 2: %d %v", code, err)
	}
	if code, _, err := k.do("GET", jobs+fullname+"-init-1", nil); err != nil || code != http.StatusNotFound {
		t.Errorf("after upgrade: init Job of revision 1 still there (%d %v)", code, err)
	}
	body := k.mustDo(t, "GET", "/apis/apps/v1/namespaces/"+ns+"/deployments/"+fullname+"-broker", nil, http.StatusOK)
	if !strings.Contains(string(body), `"image":"ghcr.io/strata-mq/strata:0.1.1"`) {
		t.Errorf("after upgrade: broker Deployment does not run the new image")
	}
}

// checkQuietHelm fails on anything helm printed to stderr (API server warnings, deprecations,
// Pod Security violations, kubeconfig complaints) and on a release that is not deployed.
func checkQuietHelm(t *testing.T, op, stdout, stderr string) {
	t.Helper()
	if s := strings.TrimSpace(stderr); s != "" {
		t.Errorf("helm %s reported errors or warnings:\n%s", op, s)
	}
	if strings.Contains(strings.ToLower(stdout), "warning") {
		t.Errorf("helm %s printed a warning:\n%s", op, stdout)
	}
	if stdout != "" && !strings.Contains(stdout, "STATUS: deployed") {
		t.Errorf("helm %s: release not deployed:\n%s", op, stdout)
	}
}

func helmManifest(t *testing.T, k *kubeAPI, ns string) *manifest {
	t.Helper()
	out, _, err := helm(t, "get", "manifest", testRelease, "--namespace", ns, "--kubeconfig="+k.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseManifest([]byte(out))
	if err != nil {
		t.Fatalf("installed manifest: %v", err)
	}
	if len(m.Objects) == 0 {
		t.Fatal("helm get manifest: no objects")
	}
	return m
}

func objectKeys(m *manifest) []string {
	var ks []string
	for _, o := range m.Objects {
		ks = append(ks, o.APIVersion+"/"+o.Kind+" "+o.Namespace+"/"+o.Name)
	}
	slices.Sort(ks)
	return ks
}

// checkObjectsExist GETs every object and wants it present (or, after uninstall, gone).
func checkObjectsExist(t *testing.T, k *kubeAPI, m *manifest, present bool) {
	t.Helper()
	want := http.StatusOK
	if !present {
		want = http.StatusNotFound
	}
	for _, o := range m.Objects {
		code, body, err := k.do("GET", objectPath(o), nil)
		if err != nil {
			t.Errorf("GET %s: %v", o, err)
			continue
		}
		if code != want {
			t.Errorf("GET %s (%s): %d, want %d: %s", o, objectPath(o), code, want, truncate(body, 300))
		}
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return fmt.Sprintf("%s…", b[:n])
	}
	return string(b)
}
