package status

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAprG checks the port of APR's %g against what libapr 1.7 itself
// printed for each value (apr_snprintf(buf, n, "%g", v) called through
// Python's ctypes on Debian's libapr-1.so.0): mod_status's numbers.
func TestAprG(t *testing.T) {
	for _, tt := range []struct {
		in   float64
		want string
	}{
		{0.0, "0"},
		{1.0, "1"},
		{2.0, "2"},
		{0.5, ".5"},
		{0.1, ".1"},
		{0.0001, ".0001"},
		{1.5e-05, "1.5e-5"},
		{9.9999999, "10"},
		{123456.5, "123457"},
		{12345678.0, "12345700"},
		{1e+21, "1.e+21"},
		{-2.5, "-2.5"},
		{1000.5, "1000.5"},
		{318976.0, "318976"},
		{0.016393441706895828, ".0163934"},
		{318.81658935546875, "318.817"},
		{0.03448275849223137, ".0344828"},
		{8.500000089406967, "8.5"},
		{1.9999999552965164, "2"},
		{99999.95, "99999.9"},
		{999999.5, "1.e+6"},
		{0.00099999, ".00099999"},
		{1234567.0, "1234570"},
		{100000.0, "1.e+5"},
		{1000000.0, "1.e+6"},
		{10000000000.0, "1.e+10"},
		{3e-07, "3.e-7"},
		{0.000123456789, ".000123457"},
		{65536.0, "65536"},
		{2.3333333333333335, "2.33333"},
		{0.00242045009508729, ".00242045"},
		{5.534008232643828e-05, "5.53401e-5"},
		{4.690840341936564e-06, "4.69084e-6"},
		{203188848.0, "203189000"},
		{1949.69091796875, "1949.69"},
		{3.1015336513519287, "3.10153"},
		{0.000635057978797704, ".000635058"},
		{5.164635240362259e-06, "5.16464e-6"},
		{5.321112439560238e-07, "5.32111e-7"},
		{1.1754263639450073, "1.17543"},
		{0.055208999663591385, ".055209"},
		{0.0074419742450118065, ".00744197"},
		{5.480744221131317e-06, "5.48074e-6"},
		{0.30072906613349915, ".300729"},
		{0.08246045559644699, ".0824605"},
		{18.898841857910156, "18.8988"},
		{19284190.0, "19284200"},
		{8.72522832651157e-06, "8.72523e-6"},
		{75820104.0, "75820100"},
		{0.0007651057094335556, ".000765106"},
		{352.4678039550781, "352.468"},
		{4679877.0, "4679880"},
		{0.19678112864494324, ".196781"},
		{8.08904369478114e-05, "8.08904e-5"},
		{2.0100669644307345e-05, "2.01007e-5"},
		{32352.265625, "32352.3"},
		{2262031.5, "2262030"},
		{0.0001384446513839066, ".000138445"},
		{43.47053146362305, "43.4705"},
		{1.0644035683071706e-05, "1.0644e-5"},
		{28.652273178100586, "28.6523"},
		{0.0004858618776779622, ".000485862"},
		{5.179996946935717e-07, "5.18e-7"},
		{0.004259780514985323, ".00425978"},
		{0.3760291039943695, ".376029"},
		{4127396.75, "4127400"},
		{0.1460636705160141, ".146064"},
		{8639.869140625, "8639.87"},
		{0.0008158714044839144, ".000815871"},
		{0.0004186246369499713, ".000418625"},
	} {
		if got := aprG(tt.in); got != tt.want {
			t.Errorf("aprG(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestApacheUptime(t *testing.T) {
	for _, tt := range []struct {
		secs       int64
		auto, html string
	}{
		{0, "", "0 seconds"},
		{1, " 1 second", "1 second"},
		{2, " 2 seconds", "2 seconds"},
		{3661, " 1 hour 1 minute 1 second", "1 hour 1 minute 1 second"},
		{86400, " 1 day", "1 day"},
		{2*86400 + 2*3600, " 2 days 2 hours", "2 days 2 hours"},
	} {
		if got := apacheUptime(tt.secs); got != tt.auto {
			t.Errorf("apacheUptime(%d) = %q, want %q", tt.secs, got, tt.auto)
		}
		if got := uptime(tt.secs); got != tt.html {
			t.Errorf("uptime(%d) = %q, want %q", tt.secs, got, tt.html)
		}
	}
}

// TestWriteAutoReproducesApache feeds writeAuto the figures of a real
// Apache 2.4's ?auto (the fixtures internal/e2e/status/testdata/apache-status
// made with capture.sh there) and wants the capture back byte for byte: key
// names and order, the conditional keys, the async block of the event MPM,
// mod_status's single-precision arithmetic and APR's number format.
func TestWriteAutoReproducesApache(t *testing.T) {
	for _, mpm := range []string{"worker", "event"} {
		t.Run(mpm, func(t *testing.T) {
			fixture, err := os.ReadFile("../e2e/status/testdata/apache-status/apache-auto-" + mpm + ".txt")
			if err != nil {
				t.Fatal(err)
			}
			st := statusFromAuto(t, string(fixture))
			var b strings.Builder
			st.writeAuto(&b)
			if b.String() != string(fixture) {
				t.Fatalf("writeAuto:\n%s\nwant (Apache's):\n%s", b.String(), fixture)
			}
		})
	}
}

// statusFromAuto reads the inputs of a ?auto page back into a Status.
func statusFromAuto(t *testing.T, auto string) Status {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(auto))
	sc.Scan()
	st := Status{Host: sc.Text()}
	num := func(v string) int64 {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		return n
	}
	ticks := func(v string) uint64 {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		return uint64(f*clockTicks + .5)
	}
	when := func(v string) time.Time {
		tm, err := time.Parse(apacheTime, v)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		v = strings.TrimPrefix(v, " ")
		switch k {
		case "ServerVersion":
			st.Version = v
		case "ServerMPM":
			st.MPM = v
			if v == "event" {
				st.Async = &AsyncStatus{}
			}
		case "Server Built":
			st.Built = v
		case "CurrentTime":
			st.Now = when(v)
		case "RestartTime":
			st.Restarted = when(v)
		case "ParentServerConfigGeneration":
			st.Generation = int(num(v))
		case "ServerUptimeSeconds":
			st.UptimeSeconds = num(v)
		case "Load1", "Load5", "Load15":
			st.Load[map[string]int{"Load1": 0, "Load5": 1, "Load15": 2}[k]] = v
		case "Total Accesses":
			st.TotalAccesses = uint64(num(v))
			st.Timed = st.TotalAccesses
		case "Total kBytes":
			st.TotalBytes = uint64(num(v))*1024 + 1000 // Apache counts whole kilobytes
		case "Total Duration":
			st.TotalDurationMs = num(v)
		case "CPUUser":
			st.ticks.user = ticks(v)
		case "CPUSystem":
			st.ticks.system = ticks(v)
		case "CPUChildrenUser":
			st.ticks.childUser = ticks(v)
		case "CPUChildrenSystem":
			st.ticks.childSystem = ticks(v)
		case "BusyWorkers":
			st.BusyWorkers = int(num(v))
		case "GracefulWorkers":
			st.GracefulWorkers = int(num(v))
		case "IdleWorkers":
			st.IdleWorkers = int(num(v))
		case "Processes":
			st.Async.Processes = int(num(v))
		case "Stopping":
			st.Async.Stopping = int(num(v))
		case "ConnsTotal":
			st.Async.ConnsTotal = int(num(v))
		case "ConnsAsyncKeepAlive":
			st.Async.ConnsKeepAlive = int(num(v))
		case "Scoreboard":
			st.Scoreboard = v
		}
	}
	return st
}

// TestWriteAutoConditionalKeys: as mod_status, no CPULoad without CPU time,
// no rates before the first second, no per-request figures before the
// first request, and an empty ServerUptime at zero.
func TestWriteAutoConditionalKeys(t *testing.T) {
	var b strings.Builder
	Status{Host: "h", Load: [3]string{"0.00", "0.00", "0.00"}}.writeAuto(&b)
	for _, absent := range []string{"CPULoad", "ReqPerSec", "BytesPerSec", "BytesPerReq", "DurationPerReq", "Processes", "ConnsTotal"} {
		if strings.Contains(b.String(), "\n"+absent+":") {
			t.Errorf("%s present:\n%s", absent, b.String())
		}
	}
	if !strings.Contains(b.String(), "\nServerUptime:\nLoad1: 0.00\n") || !strings.Contains(b.String(), "\nCPUUser: 0\n") {
		t.Errorf("zero figures:\n%s", b.String())
	}
}

// TestServerVersion: the version goes after "phased/" as three numbers, as
// apache_exporter needs them (it splits at "/", " " and "." and fails the
// scrape, or panics, on anything else), and the rest into the comment.
func TestServerVersion(t *testing.T) {
	goos := "Go " + runtime.Version() + "; " + runtime.GOOS
	for _, tt := range []struct{ in, want string }{
		{"v1.2.3", "phased/1.2.3 (" + goos + ")"},
		{"1.2.3", "phased/1.2.3 (" + goos + ")"},
		{"v1.2.3-rc.1", "phased/1.2.3 (rc.1; " + goos + ")"},
		{"v0.0.0-20261206040000-d246af0abcde+dirty", "phased/0.0.0 (20261206040000-d246af0abcde+dirty; " + goos + ")"},
		{"v1.10.0+meta", "phased/1.10.0 (meta; " + goos + ")"},
		{"", "phased/0.0.0 (dev; " + goos + ")"},
		{"(devel)", "phased/0.0.0 (dev; " + goos + ")"},
		{"v1.2", "phased/0.0.0 (dev; " + goos + ")"},
		{"v1.x.3", "phased/0.0.0 (dev; " + goos + ")"},
		{"v1.2.3-rc)\nBusyWorkers: 9", "phased/1.2.3 (rcBusyWorkers9; " + goos + ")"},
	} {
		got := ServerVersion(tt.in)
		if got != tt.want {
			t.Errorf("ServerVersion(%q) = %q, want %q", tt.in, got, tt.want)
		}
		// What apache_exporter 0.12 does with it.
		_, after, ok := strings.Cut(got, "/")
		num, _, _ := strings.Cut(after, " ")
		if parts := strings.Split(num, "."); !ok || len(parts) != 3 {
			t.Errorf("ServerVersion(%q) = %q: not product/X.Y.Z", tt.in, got)
		} else if _, err := strconv.ParseFloat(fmt.Sprintf("%s.%02s%03s", parts[0], parts[1], parts[2]), 64); err != nil {
			t.Errorf("ServerVersion(%q) = %q: apache_exporter could not read it: %v", tt.in, got, err)
		}
	}
}
