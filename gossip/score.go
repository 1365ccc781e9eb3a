package gossip

import (
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Peer-score thresholds. A peer whose score falls below GossipThreshold gets
// no gossip from us, below PublishThreshold none of our publishes, below
// GraylistThreshold its messages are dropped unread.
//
// With invalidMessageWeight = -10 the invalid-delivery penalty is
// -10 * n², so: 3 rejected messages (-90) cost nothing but score, 4 stop
// gossip, 5 stop our publishes, 7 graylist the peer, each minus up to
// +firstDeliveryCap earned by useful deliveries. The counter decays to
// nothing within invalidMessageDecay, so a peer that stops misbehaving
// recovers.
//
// Each topic counts its invalid messages apart, and the penalty is the same
// on every topic (see extraTopicWeight), so these numbers hold per topic:
// 7 rejected checkpoints graylist a peer as 7 rejected declarations do,
// while 3 of each cost 2 × 90.
const (
	GossipThreshold   = -100.0
	PublishThreshold  = -200.0
	GraylistThreshold = -400.0
)

const (
	invalidMessageWeight = -10.0
	invalidMessageDecay  = time.Hour
	firstDeliveryCap     = 50.0
	scoreInspectPeriod   = time.Second
	// extraTopicWeight is the TopicWeight of Config.Topics topics: their
	// rewards (time in mesh, first deliveries) count a quarter of those on
	// DeclarationsTopic, so a peer cannot buy headroom for misbehaviour by
	// relaying cheap checkpoints. Their invalid-message weight is divided by
	// it, so a Reject costs as much as on DeclarationsTopic: a Reject means
	// no honest peer could have sent the message, whatever the topic.
	extraTopicWeight = 0.25
)

// scoreParams returns the peer-scoring parameters for DeclarationsTopic and
// the extra topics. Only behaviour that no honest peer shows is penalised,
// so honest peers on a quiet topic never drift below zero:
//   - P4 (invalid deliveries, i.e. Verdict Reject) is the main penalty;
//   - P1 (time in mesh) and P2 (first deliveries) reward useful peers, capped;
//   - P3/P3b (mesh delivery quota) are off: declarations come in rare bursts,
//     and a quota would punish honest peers for a quiet hour;
//   - P6 (IP colocation) is off: authorities may share a NAT or a machine, and
//     test meshes put every node on 127.0.0.1;
//   - P7 (broken IWANT promises, early re-grafts) is on with a high threshold.
//   - P5 (app-specific) is the ledger's charge for replays and rate-limit
//     drops (see PeerRate, ReplayAllowance): misbehaviour that GossipSub
//     counts as Ignore and would not penalise.
func scoreParams(extra []string, app func(peer.ID) float64) (*pubsub.PeerScoreParams, *pubsub.PeerScoreThresholds) {
	topics := map[string]*pubsub.TopicScoreParams{DeclarationsTopic: topicScoreParams(1)}
	for _, name := range extra {
		topics[name] = topicScoreParams(extraTopicWeight)
	}
	params := &pubsub.PeerScoreParams{
		Topics: topics,
		// Caps the sum over topics, so extra topics add no headroom beyond
		// what DeclarationsTopic alone can earn.
		TopicScoreCap: firstDeliveryCap + 10,

		AppSpecificScore:  app,
		AppSpecificWeight: 1,

		IPColocationFactorWeight: 0,

		BehaviourPenaltyWeight:    -1,
		BehaviourPenaltyThreshold: 10,
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),

		DecayInterval: pubsub.DefaultDecayInterval,
		DecayToZero:   pubsub.DefaultDecayToZero,
		RetainScore:   10 * time.Minute,
	}
	thresholds := &pubsub.PeerScoreThresholds{
		GossipThreshold:   GossipThreshold,
		PublishThreshold:  PublishThreshold,
		GraylistThreshold: GraylistThreshold,
		// Peer exchange is off; a high bar keeps it inert if it is ever enabled.
		AcceptPXThreshold:           100,
		OpportunisticGraftThreshold: 1,
	}
	return params, thresholds
}

// topicScoreParams are one topic's parameters with TopicWeight weight; the
// invalid-message penalty is scaled so that it does not depend on weight.
func topicScoreParams(weight float64) *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight: weight,

		TimeInMeshWeight:  0.01,
		TimeInMeshQuantum: time.Second,
		TimeInMeshCap:     300, // +3 (times weight) after five minutes

		FirstMessageDeliveriesWeight: 1,
		FirstMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
		FirstMessageDeliveriesCap:    firstDeliveryCap,

		InvalidMessageDeliveriesWeight: invalidMessageWeight / weight,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(invalidMessageDecay),
	}
}
