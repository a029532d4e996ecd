package coordinator

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/monkeyci/monkeyci/events"
)

// metrics are the coordinator's Prometheus metrics, in a registry of its
// own (no global state). What the coordinator holds in memory (the queue,
// the agents, their capacity) is read at each scrape; what happens (a
// build ending, a dispatch, a pause) is counted as it happens.
type metrics struct {
	registry *prometheus.Registry
	ended    *prometheus.CounterVec
	dispatch prometheus.Histogram
	paused   prometheus.Counter
	// poolDecisions counts the pool scaler's decisions by type.
	poolDecisions *prometheus.CounterVec
	// removed and freed count what retention removed, by kind.
	removed, freed *prometheus.CounterVec
}

func newMetrics(c *Coordinator) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "monkeyci_builds_ended_total",
			Help: "Builds ended since the coordinator started, by result (success, failure, error, canceled).",
		}, []string{"result"}),
		dispatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "monkeyci_dispatch_latency_seconds",
			Help: "Time from a build entering the queue to its assignment to an agent.",
			// 1 ms to about 17 minutes: an idle fleet answers in
			// milliseconds, a full one makes builds wait for capacity.
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 11),
		}),
		paused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "monkeyci_script_paused_seconds_total",
			Help: "Seconds script containers spent paused while their jobs ran: CPU lent to jobs.",
		}),
		poolDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "monkeyci_pool_decisions_total",
			Help: "Instances the pool's scaler asked for (pool/scale-up), drained (pool/scale-in) and destroyed (pool/destroy).",
		}, []string{"type"}),
		removed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "monkeyci_retention_removed_total",
			Help: "Blobs removed past their retention, by kind (artifact, log, cache).",
		}, []string{"kind"}),
		freed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "monkeyci_retention_freed_bytes_total",
			Help: "Bytes of the blob store freed by retention, by kind.",
		}, []string{"kind"}),
	}
	for _, r := range []events.Result{events.Success, events.Failure, events.Error, events.Canceled} {
		m.ended.WithLabelValues(string(r)) // present at 0 from the start
	}
	m.registry.MustRegister(m.ended, m.dispatch, m.paused, m.poolDecisions, m.removed, m.freed, stateCollector{c},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// MetricsHandler serves the coordinator's metrics in Prometheus's format.
func (c *Coordinator) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(c.metrics.registry, promhttp.HandlerOpts{})
}

// buildEnded counts a build's end.
func (m *metrics) buildEnded(result events.Result) { m.ended.WithLabelValues(string(result)).Inc() }

// assigned observes the wait of a build sent to an agent now.
func (m *metrics) assigned(b *Build, now time.Time) {
	since := b.queuedAt
	if since.IsZero() {
		since = b.Created
	}
	m.dispatch.Observe(max(now.Sub(since), 0).Seconds())
}

// eventStored counts what a newly stored event says about pausing.
func (m *metrics) eventStored(e events.Event) {
	if e.Type == events.ScriptResumed && e.Duration > 0 {
		m.paused.Add(e.Duration.Seconds())
	}
}

var (
	queuedDesc   = prometheus.NewDesc("monkeyci_builds_queued", "Builds waiting for an agent (the queue depth).", nil, nil)
	runningDesc  = prometheus.NewDesc("monkeyci_builds_running", "Builds sent to an agent and not ended.", nil, nil)
	agentsDesc   = prometheus.NewDesc("monkeyci_agents", "Connected agents, by state (ready, cordoned, draining).", []string{"state"}, nil)
	cpusDesc     = prometheus.NewDesc("monkeyci_capacity_cpus", "CPUs of the connected agents: total, and used (taken by builds).", []string{"kind"}, nil)
	memoryDesc   = prometheus.NewDesc("monkeyci_capacity_memory_bytes", "Memory of the connected agents: total, and used (taken by builds).", []string{"kind"}, nil)
	stateMetrics = []*prometheus.Desc{queuedDesc, runningDesc, agentsDesc, cpusDesc, memoryDesc}
)

// stateCollector reads the coordinator's state at each scrape.
type stateCollector struct{ c *Coordinator }

func (s stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range stateMetrics {
		ch <- d
	}
}

func (s stateCollector) Collect(ch chan<- prometheus.Metric) {
	c := s.c
	queued := c.dispatcher.queued()
	running := c.leases.count()
	agents := map[string]int{"ready": 0, "cordoned": 0, "draining": 0}
	var total, used Capacity
	for _, a := range c.agents.states() {
		switch {
		case a.draining:
			agents["draining"]++
		case a.cordoned:
			agents["cordoned"]++
		default:
			agents["ready"]++
		}
		u := a.used()
		total.MilliCPUs += a.capacity.MilliCPUs
		total.Memory += a.capacity.Memory
		used.MilliCPUs += u.MilliCPUs
		used.Memory += u.Memory
	}
	ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(queued))
	ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, float64(running))
	for state, n := range agents {
		ch <- prometheus.MustNewConstMetric(agentsDesc, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(cpusDesc, prometheus.GaugeValue, float64(total.MilliCPUs)/1000, "total")
	ch <- prometheus.MustNewConstMetric(cpusDesc, prometheus.GaugeValue, float64(used.MilliCPUs)/1000, "used")
	ch <- prometheus.MustNewConstMetric(memoryDesc, prometheus.GaugeValue, float64(total.Memory), "total")
	ch <- prometheus.MustNewConstMetric(memoryDesc, prometheus.GaugeValue, float64(used.Memory), "used")
}

var (
	poolInstancesDesc = prometheus.NewDesc("monkeyci_pool_instances", "The pool's instances, by phase (starting, running, stopping) and draining.", []string{"phase"}, nil)
	poolDesiredDesc   = prometheus.NewDesc("monkeyci_pool_desired_instances", "How many instances the pool's scaler last wanted.", nil, nil)
)

// poolCollector reads the pool's state at each scrape.
type poolCollector struct{ v PoolView }

func (p poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolInstancesDesc
	ch <- poolDesiredDesc
}

func (p poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := p.v.Status()
	phases := map[string]int{"starting": 0, "running": 0, "stopping": 0, "draining": 0}
	for _, t := range st.Instances {
		if t.Draining && t.Phase != "stopping" {
			phases["draining"]++
			continue
		}
		phases[string(t.Phase)]++
	}
	for phase, n := range phases {
		ch <- prometheus.MustNewConstMetric(poolInstancesDesc, prometheus.GaugeValue, float64(n), phase)
	}
	ch <- prometheus.MustNewConstMetric(poolDesiredDesc, prometheus.GaugeValue, float64(st.Desired))
}

// collected counts what retention removed.
func (m *metrics) collected(kind string, blobs, bytes int64) {
	m.removed.WithLabelValues(kind).Add(float64(blobs))
	m.freed.WithLabelValues(kind).Add(float64(bytes))
}
