package cluster

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/phasedhq/phased/core/config"
	"github.com/phasedhq/phased/core/supervisor"
	"github.com/phasedhq/phased/internal/e2e"
)

// root is the module's root, from this package's folder.
const root = "../../.."

// dockerfile is the Dockerfile's instructions, line continuations joined,
// comments dropped, by stage (a FROM starts one).
type dockerfile struct{ stages [][][2]string }

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var d dockerfile
	var cur string
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") && cur == "" {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur += s + " "
			continue
		}
		cur += line
		if f := strings.Fields(cur); len(f) > 0 {
			ins := [2]string{strings.ToUpper(f[0]), strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(cur), f[0]))}
			if ins[0] == "FROM" {
				d.stages = append(d.stages, nil)
			}
			if len(d.stages) == 0 {
				t.Fatalf("Dockerfile: %s before FROM", ins[0])
			}
			d.stages[len(d.stages)-1] = append(d.stages[len(d.stages)-1], ins)
		}
		cur = ""
	}
	return d
}

// final returns the last stage's instruction ins (the last one given), or "".
func (d dockerfile) final(ins string) string {
	out := ""
	for _, i := range d.stages[len(d.stages)-1] {
		if i[0] == ins {
			out = i[1]
		}
	}
	return out
}

// execForm reads an instruction's JSON array.
func execForm(t *testing.T, s string) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(s), &argv); err != nil {
		t.Fatalf("not an exec-form JSON array: %q", s)
	}
	return argv
}

// containerConfig loads examples/container/phased.yaml as the image runs it.
func containerConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(config.LoadOptions{File: filepath.Join(root, "examples/container/phased.yaml"), Env: []string{"LISTEN_HOST=0.0.0.0"}})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// masterKillBound is how long the master waits between telling a drained
// generation to stop now and killing it (supervisor's StopKillBound).
var masterKillBound = supervisor.DefaultTimings().StopKillBound

// TestDockerfile: a multi-stage build of a static binary (CGO_ENABLED=0)
// onto a minimal image, run as a non-root user, started on the container
// configuration, stopped by the signal that configuration makes graceful,
// health-checked on its liveness endpoint through phased health.
func TestDockerfile(t *testing.T) {
	d := readDockerfile(t)
	cfg := containerConfig(t)
	if len(d.stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a run stage", len(d.stages))
	}
	var build string
	for _, i := range d.stages[0] {
		if i[0] == "RUN" && strings.Contains(i[1], "go build") {
			build = i[1]
		}
	}
	if !strings.Contains(build, "CGO_ENABLED=0 go build") || !strings.Contains(build, "./cmd/phased") {
		t.Errorf("the build stage does not build a static phased: %q", build)
	}
	if from := d.stages[len(d.stages)-1][0][1]; !strings.HasPrefix(from, "gcr.io/distroless/static") && !strings.HasPrefix(from, "debian:bookworm-slim") {
		t.Errorf("run stage FROM %s: want a minimal image", from)
	}
	if u := d.final("USER"); u == "" || strings.HasPrefix(u, "0") || strings.HasPrefix(u, "root") {
		t.Errorf("USER %q: want a non-root user", u)
	}
	if sig := d.final("STOPSIGNAL"); !(sig == "SIGTERM" && cfg.SIGTERM == "graceful-stop" || sig == "SIGWINCH") {
		t.Errorf("STOPSIGNAL %q with sigterm: %s is not a graceful stop", sig, cfg.SIGTERM)
	}
	entry := execForm(t, d.final("ENTRYPOINT"))
	if len(entry) != 3 || entry[1] != "-f" || entry[2] != "/etc/phased/phased.yaml" {
		t.Errorf("ENTRYPOINT %q", entry)
	}
	if !strings.Contains(strings.Join(flatten(d.stages[len(d.stages)-1]), "\n"), "COPY examples/container/phased.yaml /etc/phased/phased.yaml") {
		t.Error("the image does not carry examples/container/phased.yaml as /etc/phased/phased.yaml")
	}
	hc := d.final("HEALTHCHECK")
	cmd, ok := strings.CutPrefix(hc[strings.Index(hc, "CMD"):], "CMD ")
	if !ok {
		t.Fatalf("HEALTHCHECK %q", hc)
	}
	argv := execForm(t, cmd)
	if argv[0] != entry[0] || !strings.Contains(strings.Join(argv, " "), "-f /etc/phased/phased.yaml health") || strings.Contains(cmd, "--ready") {
		t.Errorf("HEALTHCHECK %q: want phased health (liveness) on the image's configuration", argv)
	}
	if cfg.Health.LivenessPath == "" {
		t.Error("the container configuration turns liveness off")
	}
	if cfg.ErrorLog.Path != "stderr" || cfg.ErrorLog.Format != "json" || cfg.AccessLog.Path != "stdout" {
		t.Errorf("container logs: error %s %s, access %s; want JSON on stderr, access on stdout", cfg.ErrorLog.Path, cfg.ErrorLog.Format, cfg.AccessLog.Path)
	}
	if cfg.Health.DrainDelay <= 0 {
		t.Error("the container configuration has no drain delay")
	}
	if env := d.final("ENV"); !strings.Contains(env, "TMPDIR=/etc/phased/run") || !strings.Contains(env, "LISTEN_HOST=0.0.0.0") {
		t.Errorf("ENV %q: the runtime folder must be the writable run/, the listener on every address", env)
	}
}

func flatten(ins [][2]string) []string {
	var out []string
	for _, i := range ins {
		out = append(out, i[0]+" "+i[1])
	}
	return out
}

// TestKubernetesManifests: the Deployment's probes ask the container
// configuration's health paths on its port, readiness notices a stop
// within the drain delay, the grace period outlasts the drain delay plus
// the drain bound plus the master's kill bound, the pod runs as the image's
// user, rolling updates never lose a pod before its replacement is ready;
// the Service and the PodDisruptionBudget select the Deployment's pods.
func TestKubernetesManifests(t *testing.T) {
	cfg := containerConfig(t)
	_, port, _ := strings.Cut(cfg.Listen[0].Address, ":")
	var dep struct {
		Metadata struct{ Labels map[string]string }
		Spec     struct {
			Replicas int
			Selector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			}
			Strategy struct {
				Type          string
				RollingUpdate struct {
					MaxUnavailable any `yaml:"maxUnavailable"`
				} `yaml:"rollingUpdate"`
			}
			Template struct {
				Metadata struct{ Labels map[string]string }
				Spec     struct {
					Grace           int `yaml:"terminationGracePeriodSeconds"`
					SecurityContext struct {
						RunAsNonRoot bool `yaml:"runAsNonRoot"`
						RunAsUser    int  `yaml:"runAsUser"`
					} `yaml:"securityContext"`
					Containers []struct {
						Ports []struct {
							Name          string
							ContainerPort int `yaml:"containerPort"`
						}
						Readiness probeSpec `yaml:"readinessProbe"`
						Liveness  probeSpec `yaml:"livenessProbe"`
						Lifecycle any       `yaml:"lifecycle"`
						Mounts    []struct {
							MountPath string `yaml:"mountPath"`
						} `yaml:"volumeMounts"`
					}
				}
			}
		}
	}
	readYAML(t, "examples/kubernetes/deployment.yaml", &dep)
	spec := dep.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	portOf := func(p any) string {
		if s, ok := p.(string); ok {
			for _, cp := range c.Ports {
				if cp.Name == s {
					return strconv.Itoa(cp.ContainerPort)
				}
			}
		}
		return fmt.Sprint(p)
	}
	for _, pr := range []struct {
		name string
		p    probeSpec
		path string
	}{{"readinessProbe", c.Readiness, cfg.Health.ReadinessPath}, {"livenessProbe", c.Liveness, cfg.Health.LivenessPath}} {
		if pr.p.HTTPGet.Path != pr.path || portOf(pr.p.HTTPGet.Port) != port {
			t.Errorf("%s asks %s on port %s; the configuration answers %s on %s", pr.name, pr.p.HTTPGet.Path, portOf(pr.p.HTTPGet.Port), pr.path, port)
		}
	}
	if d := time.Duration(c.Readiness.Period*max(c.Readiness.Failures, 1)) * time.Second; d > cfg.Health.DrainDelay {
		t.Errorf("readiness notices a stop after up to %s, longer than the drain delay %s", d, cfg.Health.DrainDelay)
	}
	need := cfg.Health.DrainDelay + cfg.GracefulShutdownTimeout + masterKillBound
	if g := time.Duration(spec.Grace) * time.Second; g <= need {
		t.Errorf("terminationGracePeriodSeconds %s is not above drain_delay + graceful_shutdown_timeout + %s = %s", g, masterKillBound, need)
	}
	if c.Lifecycle != nil {
		t.Error("a preStop hook: phased's drain delay is the sleep")
	}
	if !spec.SecurityContext.RunAsNonRoot || strconv.Itoa(spec.SecurityContext.RunAsUser) != strings.Split(readDockerfile(t).final("USER"), ":")[0] {
		t.Errorf("pod security context %+v: want runAsNonRoot as the image's USER", spec.SecurityContext)
	}
	if !strings.Contains(fmt.Sprint(c.Mounts), "/etc/phased/run") {
		t.Error("no writable volume on /etc/phased/run for a read-only root file system")
	}
	if dep.Spec.Replicas < 2 || dep.Spec.Strategy.Type != "RollingUpdate" || fmt.Sprint(dep.Spec.Strategy.RollingUpdate.MaxUnavailable) != "0" {
		t.Errorf("replicas %d, strategy %+v: want a rolling update that keeps every pod until its replacement is ready", dep.Spec.Replicas, dep.Spec.Strategy)
	}
	labels := dep.Spec.Template.Metadata.Labels
	selects := func(sel map[string]string) bool {
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if !selects(dep.Spec.Selector.MatchLabels) {
		t.Error("the Deployment's selector does not select its pods")
	}
	var svc struct {
		Spec struct {
			Selector map[string]string
			Ports    []struct {
				TargetPort any `yaml:"targetPort"`
			}
		}
	}
	readYAML(t, "examples/kubernetes/service.yaml", &svc)
	if !selects(svc.Spec.Selector) || len(svc.Spec.Ports) == 0 || portOf(svc.Spec.Ports[0].TargetPort) != port {
		t.Errorf("the Service %+v does not reach the pods' port %s", svc.Spec, port)
	}
	var pdb struct {
		Kind string
		Spec struct {
			MaxUnavailable any `yaml:"maxUnavailable"`
			MinAvailable   any `yaml:"minAvailable"`
			Selector       struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			}
		}
	}
	readYAML(t, "examples/kubernetes/pdb.yaml", &pdb)
	if pdb.Kind != "PodDisruptionBudget" || !selects(pdb.Spec.Selector.MatchLabels) || pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil {
		t.Errorf("PodDisruptionBudget %+v", pdb)
	}
}

type probeSpec struct {
	HTTPGet struct {
		Path string
		Port any
	} `yaml:"httpGet"`
	Period   int `yaml:"periodSeconds"`
	Failures int `yaml:"failureThreshold"`
}

func readYAML(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestSystemdUnit: systemctl stop is a graceful stop, and systemd waits
// longer than the drain it starts (default configuration); systemd's own
// parser finds nothing wrong with the unit.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "examples/systemd/phased.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	get := func(key string) string {
		m := regexp.MustCompile(`(?m)^` + key + `=(.*)$`).FindStringSubmatch(unit)
		if m == nil {
			return ""
		}
		return strings.TrimSpace(m[1])
	}
	def := config.Default()
	if sig := get("KillSignal"); sig != "SIGWINCH" && !(sig == "SIGTERM" && def.SIGTERM == "graceful-stop") {
		t.Errorf("KillSignal=%s: systemctl stop would not stop gracefully", sig)
	}
	stop, err := strconv.Atoi(get("TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec=%q", get("TimeoutStopSec"))
	}
	if need := def.Health.DrainDelay + def.GracefulShutdownTimeout + masterKillBound; time.Duration(stop)*time.Second <= need {
		t.Errorf("TimeoutStopSec=%d is not above %s", stop, need)
	}
	if get("KillMode") != "mixed" {
		t.Errorf("KillMode=%s: systemd must signal the master alone", get("KillMode"))
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed: the unit's syntax was not checked")
		return
	}
	copy := filepath.Join(t.TempDir(), "phased.service")
	os.WriteFile(copy, []byte(strings.ReplaceAll(unit, "/usr/local/bin/phased", e2e.Binary(t))), 0o644)
	out, _ := exec.Command(analyze, "verify", copy).CombinedOutput()
	if bytes.Contains(out, []byte(copy)) {
		t.Errorf("systemd-analyze verify:\n%s", out)
	}
}

// TestContainerImage builds phased as the Dockerfile does (a static
// binary), lays it out as the image does, and runs it on the container
// configuration as the image's non-root user (when the test runs as root):
// it serves, writes JSON logs (error log on stderr, access log on
// stdout), answers phased health, and on SIGTERM stops gracefully:
// readiness 503 while it still serves for the drain delay, then exit 0.
func TestContainerImage(t *testing.T) {
	e2e.Binary(t) // skips with -short
	d := readDockerfile(t)
	img := e2e.OpenDir(t)
	bin := filepath.Join(img, "phased")
	var build string
	for _, i := range d.stages[0] {
		if i[0] == "RUN" && strings.Contains(i[1], "go build") {
			build = i[1]
		}
	}
	m := regexp.MustCompile(`CGO_ENABLED=0 (go build [^&]*?) -o \S+ (\./cmd/phased)`).FindStringSubmatch(build)
	if m == nil {
		t.Fatalf("no go build of ./cmd/phased in %q", build)
	}
	line := "CGO_ENABLED=0 " + m[1] + " -o '" + bin + "' " + m[2] // the Dockerfile's RUN, but for -o
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a dynamic loader: not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs %v", libs)
	}
	f.Close()

	// The image's /etc/phased, owned as the Dockerfile makes it.
	etc := filepath.Join(img, "etc/phased")
	run := filepath.Join(etc, "run")
	copyTree(t, filepath.Join(root, "examples/container"), etc)
	os.MkdirAll(run, 0o755)
	uid, gid := 65532, 65532
	if u := strings.Split(d.final("USER"), ":"); len(u) == 2 {
		uid, _ = strconv.Atoi(u[0])
		gid, _ = strconv.Atoi(u[1])
	}
	asUser := os.Getuid() == 0
	if asUser {
		os.Chown(run, uid, gid)
	} else {
		t.Logf("not root: the image's user %d is not tried", uid)
	}
	port := strings.Split(e2e.FreePort(t), ":")[1]
	// TMPDIR is the image's /etc/phased/run there; here a shorter folder,
	// as the test's path would leave too few of a unix socket's 107 bytes.
	env := []string{"LISTEN_HOST=127.0.0.1", "PORT=" + port, "TMPDIR=" + e2e.ProcessTempDir(t), "PHASED_HEALTH__DRAIN_DELAY=1s", "PATH=/usr/bin:/bin"}
	conf := filepath.Join(etc, "phased.yaml")
	start := func(args ...string) *exec.Cmd {
		c := exec.Command(bin, append([]string{"-f", conf}, args...)...)
		c.Dir, c.Env = "/", env
		if asUser {
			c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		}
		return c
	}
	master := start()
	var stdout, stderr lockedBuffer
	master.Stdout, master.Stderr = &stdout, &stderr
	if err := master.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- master.Wait() }()
	t.Cleanup(func() {
		for _, p := range append(e2e.Descendants(master.Process.Pid), master.Process.Pid) {
			syscall.Kill(p, syscall.SIGKILL)
		}
		<-done
	})
	addr := "127.0.0.1:" + port
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(stderr.String(), "resuming normal operations"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not serving:\n%s", stderr.String())
		}
	}
	if asUser {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", master.Process.Pid))
		if !regexp.MustCompile(`(?m)^Uid:\s+` + strconv.Itoa(uid) + `\s`).Match(st) {
			t.Errorf("the master does not run as %d:\n%s", uid, st)
		}
	}
	health := func(args ...string) (int, string) {
		c := start(append([]string{"health"}, args...)...)
		out, _ := c.CombinedOutput()
		return c.ProcessState.ExitCode(), string(out)
	}
	if code, out := health(); code != 0 || !strings.Contains(out, "/livez: 200") {
		t.Fatalf("phased health: %d %s", code, out)
	}
	if code, err := get(addr, "/hello.txt"); code != 200 {
		t.Fatalf("GET /hello.txt: %d %v", code, err)
	}
	master.Process.Signal(syscall.SIGTERM)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _ := health("--ready"); code == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("readiness did not turn 503 after SIGTERM")
		}
	}
	if code, err := get(addr, "/hello.txt"); code != 200 {
		t.Fatalf("GET during the drain delay: %d %v", code, err)
	}
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if !json.Valid([]byte(l)) {
			t.Errorf("an error-log line that is not JSON: %q", l)
		}
	}
	access := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(access) != 2 || !strings.Contains(access[0], `"request":"GET /hello.txt HTTP/1.1"`) || !json.Valid([]byte(access[1])) {
		t.Errorf("stdout, the access log: %q", access)
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// lockedBuffer is a bytes.Buffer written by a process's output copier and
// read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
