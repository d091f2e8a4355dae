package tests

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with continuation lines joined.
type instruction struct {
	Cmd  string // upper case: FROM, RUN, COPY, ...
	Args string
	Line int
}

// stage is one FROM ... [AS name] section.
type stage struct {
	Name, Image  string
	Instructions []instruction
}

// parseDockerfile reads instructions and stages: enough of the format for the checks below
// (comments, parser directives, line continuations, exec and shell forms).
func parseDockerfile(t *testing.T, path string) (args map[string]string, stages []*stage) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	args = map[string]string{}
	var cur *stage
	var buf strings.Builder
	start := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && buf.Len() == 0) {
			continue
		}
		if buf.Len() == 0 {
			start = n
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			buf.WriteString(strings.TrimSpace(cont) + " ")
			continue
		}
		buf.WriteString(line)
		text := strings.TrimSpace(buf.String())
		buf.Reset()
		if text == "" {
			continue
		}
		cmd, rest, _ := strings.Cut(text, " ")
		in := instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(rest), Line: start}
		switch {
		case in.Cmd == "FROM":
			fields := strings.Fields(in.Args)
			fields = slices.DeleteFunc(fields, func(s string) bool { return strings.HasPrefix(s, "--") })
			cur = &stage{Image: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				cur.Name = fields[2]
			}
			stages = append(stages, cur)
		case in.Cmd == "ARG" && cur == nil:
			k, v, _ := strings.Cut(in.Args, "=")
			args[k] = v
		case cur != nil:
			cur.Instructions = append(cur.Instructions, in)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return args, stages
}

// readmeBuildCommand is the one `go build` line in the README's shell code blocks.
func readmeBuildCommand(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	inCode := false
	for _, line := range strings.Split(string(b), "\n") {
		trim := strings.TrimSpace(line)
		if strings.HasPrefix(trim, "```") {
			inCode = !inCode
			continue
		}
		if inCode && strings.Contains(trim, "go build") {
			cmd, _, _ := strings.Cut(trim, " #") // drop a trailing comment
			cmds = append(cmds, strings.Join(strings.Fields(cmd), " "))
		}
	}
	if len(cmds) != 1 {
		t.Fatalf("README.md: want exactly one `go build` command in its code blocks, found %q", cmds)
	}
	return cmds[0]
}

// TestDockerfileBuildsLikeREADME: the image is built by exactly the command the README documents.
func TestDockerfileBuildsLikeREADME(t *testing.T) {
	want := readmeBuildCommand(t)
	if !strings.Contains(want, "CGO_ENABLED=0") || !strings.HasSuffix(want, "./cmd/strata") {
		t.Errorf("README build command %q does not build a static ./cmd/strata", want)
	}
	_, stages := parseDockerfile(t, filepath.Join("..", "docker", "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: want a multi-stage build, have %d stage(s)", len(stages))
	}
	build := builderOf(t, stages)
	var runs []string
	for _, in := range build.Instructions {
		if in.Cmd == "RUN" && strings.Contains(in.Args, "./cmd/strata") {
			runs = append(runs, strings.Join(strings.Fields(in.Args), " "))
		}
	}
	if len(runs) != 1 {
		t.Fatalf("build stage %q: want one RUN building ./cmd/strata, have %q", build.Name, runs)
	}
	if runs[0] != want {
		t.Errorf("Dockerfile build stage runs\n  %s\nthe README documents\n  %s", runs[0], want)
	}
	wd := ""
	for _, in := range build.Instructions {
		if in.Cmd == "WORKDIR" {
			wd = in.Args
		}
	}
	if wd != "/src" {
		t.Errorf("build stage WORKDIR %q, want /src", wd)
	}
}

// builderOf returns the stage the final stage copies the strata binary from.
func builderOf(t *testing.T, stages []*stage) *stage {
	t.Helper()
	final := stages[len(stages)-1]
	for _, in := range final.Instructions {
		if in.Cmd != "COPY" {
			continue
		}
		from := regexp.MustCompile(`--from=(\S+)`).FindStringSubmatch(in.Args)
		if from == nil || !strings.Contains(in.Args, "bin/strata ") {
			continue
		}
		for _, s := range stages {
			if s.Name == from[1] {
				return s
			}
		}
	}
	t.Fatal("the final stage copies bin/strata from no named stage")
	return nil
}

// TestDockerfileRuntimeImage: a minimal, non-root runtime with the binary on PATH and OCI labels.
func TestDockerfileRuntimeImage(t *testing.T) {
	args, stages := parseDockerfile(t, filepath.Join("..", "docker", "Dockerfile"))
	build := builderOf(t, stages)
	if img := expandArgs(build.Image, args); !strings.HasPrefix(img, "golang:") {
		t.Errorf("build stage image %q, want golang", img)
	}
	// The Go version of the builder matches the module's go directive.
	goMod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(goMod); m != nil {
		if got := strings.TrimPrefix(expandArgs(build.Image, args), "golang:"); !strings.HasPrefix(got, string(m[1])) {
			t.Errorf("builder golang:%s, but go.mod says go %s", got, m[1])
		}
	}

	final := stages[len(stages)-1]
	runtime := expandArgs(final.Image, args)
	if !strings.Contains(runtime, "distroless/static") && runtime != "scratch" {
		t.Errorf("runtime image %q: want distroless/static or scratch", runtime)
	}
	var user, entrypoint string
	labels := map[string]bool{}
	copied := false
	for _, in := range final.Instructions {
		switch in.Cmd {
		case "USER":
			user = in.Args
		case "ENTRYPOINT":
			entrypoint = in.Args
		case "LABEL":
			for _, m := range regexp.MustCompile(`(org\.opencontainers\.image\.[a-z]+)=`).FindAllStringSubmatch(in.Args, -1) {
				labels[m[1]] = true
			}
		case "COPY":
			if strings.Contains(in.Args, "bin/strata ") && strings.HasSuffix(in.Args, "/usr/local/bin/") {
				copied = true
			}
		case "RUN":
			t.Errorf("runtime stage line %d: RUN needs a shell the runtime image must not have", in.Line)
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if uid == "" || uid == "0" || uid == "root" || !regexp.MustCompile(`^\d+$`).MatchString(uid) {
		t.Errorf("USER %q: want a numeric non-root user (Kubernetes verifies runAsNonRoot by uid)", user)
	}
	var ep []string
	if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || !slices.Equal(ep, []string{"strata"}) {
		t.Errorf(`ENTRYPOINT %s, want ["strata"] (exec form, binary on PATH)`, entrypoint)
	}
	if !copied {
		t.Errorf("the strata binary is not copied to /usr/local/bin/")
	}
	for _, l := range []string{"org.opencontainers.image.title", "org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.revision"} {
		if !labels[l] {
			t.Errorf("missing OCI label %s", l)
		}
	}
}

// expandArgs replaces ${NAME} with the ARG default declared before the first FROM.
func expandArgs(s string, args map[string]string) string {
	return regexp.MustCompile(`\$\{(\w+)\}`).ReplaceAllStringFunc(s, func(m string) string {
		return args[m[2:len(m)-1]]
	})
}

// TestDockerignore: the build context keeps what the build needs and drops VCS data and the
// rest of the deploy module.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	for _, want := range []string{".git", "deploy", "!deploy/docker/probe", "!deploy/go.mod", "!deploy/go.sum"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore lacks %q", want)
		}
	}
	for _, p := range patterns {
		for _, needed := range []string{"go.mod", "go.sum", "cmd", "api", "*.go"} {
			if strings.TrimPrefix(strings.TrimSuffix(p, "/"), "/") == needed {
				t.Errorf(".dockerignore excludes %s, which the build needs", needed)
			}
		}
	}
}
