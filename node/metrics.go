package node

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are one node's Prometheus metrics, on its own registry so that
// many nodes can share a process (the testnet).
type metrics struct {
	reg          *prometheus.Registry
	submitted    *prometheus.CounterVec
	gossip       *prometheus.CounterVec
	decisions    *prometheus.CounterVec
	applied      prometheus.Counter
	applyRefused prometheus.Counter
	pending      prometheus.Gauge
	splitView    prometheus.Gauge
	version      prometheus.GaugeFunc
	syncMetrics
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.submitted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fednode_declarations_submitted_total", Help: "Declarations submitted through the API, by outcome.",
	}, []string{"outcome"})
	m.gossip = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fednode_gossip_validations_total", Help: "Gossip messages validated, by verdict (accept, reject, ignore).",
	}, []string{"verdict"})
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fednode_decisions_total", Help: "Verification decisions, by outcome and reason code.",
	}, []string{"decision", "reason"})
	m.applied = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fednode_declarations_applied_total", Help: "Declarations accepted into the agreed graph by this replica.",
	})
	m.applyRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fednode_declarations_refused_total", Help: "Committed declarations the graph refused on re-verification (duplicates included).",
	})
	m.pending = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "fednode_pending_declarations", Help: "Valid declarations waiting to be agreed.",
	})
	m.splitView = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "fednode_split_view", Help: "1 once this node has seen two checkpoints of one log size with different roots.",
	})
	m.syncMetrics = newSyncMetrics(m.reg)
	m.reg.MustRegister(m.submitted, m.gossip, m.decisions, m.applied, m.applyRefused, m.pending, m.splitView,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watchVersion exports the graph version as a gauge.
func (m *metrics) watchVersion(f func() float64) {
	m.version = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fednode_graph_version", Help: "Declarations in this replica's agreed graph.",
	}, f)
	m.reg.MustRegister(m.version)
}
