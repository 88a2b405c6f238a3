package status

// The Prometheus metrics: children answer them from two shared-memory
// segments, their generation's scoreboard (workers by state, requests and
// bytes) and the master's counter block (children by generation and life
// stage, spawned, recycled and exited by cause, restarts, accept-queue
// depth per listener, request durations), which lives as long as the
// master, so its counters never reset between generations.

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/phasedhq/phased/internal/scoreboard"
)

// metricsHandler returns the /metrics handler for m.
func metricsHandler(m *Module) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{m: m})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

var (
	workersDesc = prometheus.NewDesc("phased_workers", "Worker slots of the current generation by mod_status class (busy, idle, graceful).", []string{"class"}, nil)
	slotsDesc   = prometheus.NewDesc("phased_scoreboard_slots", "Worker slots of the current generation by scoreboard state.", []string{"state"}, nil)
	procsDesc   = prometheus.NewDesc("phased_children", "Live children of the current generation.", []string{"generation", "mpm"}, nil)
	reqDesc     = prometheus.NewDesc("phased_generation_requests_total", "Requests served by the current generation.", nil, nil)
	bytesDesc   = prometheus.NewDesc("phased_generation_response_bytes_total", "Response body bytes sent by the current generation.", nil, nil)
	countDesc   = prometheus.NewDesc("phased_children_events_total", "Children's life events since the master started.", []string{"event"}, nil)
	restartDesc = prometheus.NewDesc("phased_restarts_total", "Restarts since the master started, by result.", []string{"result"}, nil)
	queueDesc   = prometheus.NewDesc("phased_listen_queue", "Connections waiting in a listener's accept queue (TCP_INFO, each second).", []string{"listener"}, nil)
	limitDesc   = prometheus.NewDesc("phased_listen_queue_limit", "A listener's accept-queue limit (the effective backlog).", []string{"listener"}, nil)
	maxQDesc    = prometheus.NewDesc("phased_listen_queue_max", "The deepest accept queue a listener had since the master started.", []string{"listener"}, nil)
	acceptDesc  = prometheus.NewDesc("phased_connections_accepted_total", "Connections the children accepted since the master started.", nil, nil)
	slowDesc    = prometheus.NewDesc("phased_slow_requests_total", "Requests slower than status.slow_request since the master started.", nil, nil)
	cutDesc     = prometheus.NewDesc("phased_connections_cut_total", "Connections children closed with a request in flight or unread: at the end of a drain bounded by graceful_shutdown_timeout, or on a hard restart or stop.", nil, nil)
	stateDesc   = prometheus.NewDesc("phased_children_by_state", "Children by generation and life stage (starting, ready, retiring), as the master sees them.", []string{"generation", "state"}, nil)
	spawnDesc   = prometheus.NewDesc("phased_children_spawned_total", "Children started since the master started.", nil, nil)
	recycleDesc = prometheus.NewDesc("phased_children_recycled_total", "Children retired and replaced since the master started, by cause: "+
		"max_connections (max_connections_per_child), max_memory (max_memory_per_child), signal (a SIGUSR1 or SIGTERM sent to the child, or its own accept error), "+
		"recycle (phased -k recycle) or mpm (the MPM retired a spare child).", []string{"cause"}, nil)
	exitDesc = prometheus.NewDesc("phased_children_exited_total", "Children that exited since the master started, by cause: "+
		"normal (asked to: retired, drained, stopped), signal (killed by a signal nobody asked for), "+
		"status (an unasked exit with a status) or child_init (their child-init hooks failed).", []string{"cause"}, nil)
	alogDropDesc = prometheus.NewDesc("phased_access_log_dropped_lines_total", "Access-log lines the children lost to failed writes (a full disk, an I/O error) since the master started; the error log says why.", nil, nil)
	alogErrDesc  = prometheus.NewDesc("phased_access_log_write_errors_total", "Failed writes to the access log since the master started; each loses the batch of lines it carried.", nil, nil)
	proxyRejDesc = prometheus.NewDesc("phased_proxy_protocol_rejected_total", "Connections children closed on a listener with proxy_protocol because they did not start with a valid PROXY header in time, or came from outside trusted_proxies; none was served.", nil, nil)
	reclaimDesc  = prometheus.NewDesc("phased_connections_reclaimed_total", "Connections worker and prefork children closed, having sent nothing for a second (new, or idle between keep-alive requests), because every thread of the child was held while connections waited to be accepted.", nil, nil)
	maxDesc      = prometheus.NewDesc("phased_max_children_reached_total", "Maintenance ticks that wanted more children than the MPM's limit allows.", nil, nil)
	durDesc      = prometheus.NewDesc("phased_request_duration_seconds", "How long requests took, from the children, since the master started.", nil, nil)
)

type collector struct{ m *Module }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{workersDesc, slotsDesc, procsDesc, reqDesc, bytesDesc, countDesc, restartDesc, queueDesc, limitDesc,
		maxQDesc, acceptDesc, slowDesc, cutDesc, alogDropDesc, alogErrDesc, proxyRejDesc, reclaimDesc, maxDesc, durDesc, stateDesc, spawnDesc, recycleDesc, exitDesc, certDesc} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.m.collectCertificates(ch)
	{
		snap := c.m.board.Snapshot()
		sum := snap.Summary()
		ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(sum.Busy), "busy")
		ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(sum.Idle), "idle")
		ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(sum.ByState[scoreboard.Graceful]), "graceful")
		for st := scoreboard.Dead; st < scoreboard.NumStates; st++ {
			ch <- prometheus.MustNewConstMetric(slotsDesc, prometheus.GaugeValue, float64(sum.ByState[st]), st.String())
		}
		ch <- prometheus.MustNewConstMetric(procsDesc, prometheus.GaugeValue, float64(sum.Procs), strconv.Itoa(c.m.gen), c.m.mpm)
		ch <- prometheus.MustNewConstMetric(reqDesc, prometheus.CounterValue, float64(sum.Requests))
		ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(sum.Bytes))
	}
	{
		k := c.m.counts
		get := func(cs ...scoreboard.Counter) float64 {
			var n uint64
			for _, c := range cs {
				n += k.Get(c)
			}
			return float64(n)
		}
		counter := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
		}
		// The first families, by event, stay as they were; the _total
		// families by cause below split them.
		for _, e := range []struct {
			name string
			cs   []scoreboard.Counter
		}{
			{"spawned", []scoreboard.Counter{scoreboard.Spawned}},
			{"exited_normally", []scoreboard.Counter{scoreboard.ExitedNormally}},
			{"exited_unexpectedly", []scoreboard.Counter{scoreboard.ExitedCrashed, scoreboard.ExitedSignal, scoreboard.ExitedChildInit}},
			{"recycled", []scoreboard.Counter{scoreboard.RecycledSelf, scoreboard.RecycledMaxConnections}},
			{"retired_by_mpm", []scoreboard.Counter{scoreboard.RetiredByMPM, scoreboard.RecycledMemory}},
		} {
			counter(countDesc, get(e.cs...), e.name)
		}
		counter(spawnDesc, get(scoreboard.Spawned))
		for _, e := range []struct {
			c     scoreboard.Counter
			cause string
		}{
			{scoreboard.RecycledMaxConnections, "max_connections"}, {scoreboard.RecycledMemory, "max_memory"},
			{scoreboard.RecycledSelf, "signal"}, {scoreboard.RecycledCommand, "recycle"}, {scoreboard.RetiredByMPM, "mpm"},
		} {
			counter(recycleDesc, get(e.c), e.cause)
		}
		for _, e := range []struct {
			c     scoreboard.Counter
			cause string
		}{
			{scoreboard.ExitedNormally, "normal"}, {scoreboard.ExitedSignal, "signal"},
			{scoreboard.ExitedCrashed, "status"}, {scoreboard.ExitedChildInit, "child_init"},
		} {
			counter(exitDesc, get(e.c), e.cause)
		}
		ch <- prometheus.MustNewConstMetric(restartDesc, prometheus.CounterValue, float64(k.Get(scoreboard.Restarts)), "ok")
		ch <- prometheus.MustNewConstMetric(restartDesc, prometheus.CounterValue, float64(k.Get(scoreboard.RestartFailures)), "failed")
		for i, l := range c.m.addrs {
			depth, limit := k.Queue(i)
			ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(depth), l)
			ch <- prometheus.MustNewConstMetric(limitDesc, prometheus.GaugeValue, float64(limit), l)
			ch <- prometheus.MustNewConstMetric(maxQDesc, prometheus.GaugeValue, float64(k.MaxQueue(i)), l)
		}
		ch <- prometheus.MustNewConstMetric(acceptDesc, prometheus.CounterValue, float64(k.Get(scoreboard.Accepted)))
		ch <- prometheus.MustNewConstMetric(slowDesc, prometheus.CounterValue, float64(k.Get(scoreboard.SlowRequests)))
		ch <- prometheus.MustNewConstMetric(cutDesc, prometheus.CounterValue, float64(k.Get(scoreboard.ConnectionsCut)))
		ch <- prometheus.MustNewConstMetric(alogDropDesc, prometheus.CounterValue, float64(k.Get(scoreboard.AccessLogDroppedLines)))
		ch <- prometheus.MustNewConstMetric(alogErrDesc, prometheus.CounterValue, float64(k.Get(scoreboard.AccessLogWriteErrors)))
		ch <- prometheus.MustNewConstMetric(proxyRejDesc, prometheus.CounterValue, float64(k.Get(scoreboard.ProxyRejected)))
		ch <- prometheus.MustNewConstMetric(reclaimDesc, prometheus.CounterValue, float64(k.Get(scoreboard.ConnectionsReclaimed)))
		ch <- prometheus.MustNewConstMetric(maxDesc, prometheus.CounterValue, float64(k.Get(scoreboard.MaxChildrenReached)))
		for _, g := range k.Generations() {
			gen := strconv.Itoa(g.Generation)
			ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, float64(g.Starting), gen, "starting")
			ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, float64(g.Ready), gen, "ready")
			ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, float64(g.Retiring), gen, "retiring")
		}
		cum, n, sum := k.Durations()
		buckets := make(map[float64]uint64, len(cum))
		for i, b := range scoreboard.DurationBuckets {
			buckets[b] = cum[i]
		}
		ch <- prometheus.MustNewConstHistogram(durDesc, n, sum.Seconds(), buckets)
	}
}
