package bench

import "github.com/frayhq/fray/broker"

// brokerMeter reads what the in-process brokers moved: the messages they
// received from and delivered to clients (and peers), and those messages'
// bytes (headers and payload; subjects are not counted). nats-server
// counts these itself (its Varz), so reading them costs the phase nothing
// per message. A nil meter reads zero (brokers in other processes).
type brokerMeter []*broker.Server

// read is the brokers' message and byte counts so far, in and out, summed.
func (m brokerMeter) read() (msgs, bytes uint64) {
	for _, s := range m {
		v, err := s.NATS().Varz(nil)
		if err != nil {
			continue // a node shutting down: its counts stop with it
		}
		msgs += uint64(v.InMsgs + v.OutMsgs)
		bytes += uint64(v.InBytes + v.OutBytes)
	}
	return msgs, bytes
}
