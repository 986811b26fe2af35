package actors

import (
	"context"
	"reflect"
	"testing"

	"github.com/frayhq/fray/objects"
)

// FuzzWireDecoders feeds arbitrary bytes to every decoder of wire input:
// call, reply, placement, control, registry and operation records, handles,
// and the host's method dispatch. None may panic.
func FuzzWireDecoders(f *testing.F) {
	seed := func(v any) {
		b, err := objects.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	arg, _ := objects.Marshal(int64(3))
	seed(callMsg{V: 1, Method: "Add", Arg: arg})
	seed(callMsg{V: 1, Method: "Get"})
	seed(callMsg{V: 1, Method: "Add", Arg: []byte{0x63, 'a', 'b', 'c'}})
	seed(callMsg{V: 1, Method: "Nope", Op: "x"})
	seed(replyMsg{V: 1, Epoch: 2, Result: arg, Err: &wireError{Type: "t", Message: "m"}})
	seed(placeMsg{V: 1, Op: "place", Namespace: "default", Name: "a", Rev: 3, Epoch: 1})
	seed(ctlMsg{V: 1, Op: "cancel", OpID: "x"})
	seed(Record{V: 1, Namespace: "default", Name: "a", Class: "c", State: StateReady, Epoch: 1, Index: -1})
	seed(OpRecord{V: 1, ID: "x", State: OpRunning})
	seed("default/a")
	f.Add([]byte(`"rl/curriculum"`))
	f.Add([]byte{0xff, 0x00})
	f.Add([]byte{})

	ms, err := methodsOf(reflect.TypeFor[*Counter]())
	if err != nil {
		f.Fatal(err)
	}
	in := &instance{ms: ms, val: reflect.ValueOf(&Counter{}), rec: Record{Class: ClassCounter}}
	ctx := reflect.ValueOf(context.Background())
	f.Fuzz(func(t *testing.T, data []byte) {
		var cm callMsg
		if objects.Unmarshal(data, &cm) == nil {
			in.invoke(ctx, &cm)
		}
		var r replyMsg
		_ = objects.Unmarshal(data, &r)
		var pm placeMsg
		_ = objects.Unmarshal(data, &pm)
		var cl ctlMsg
		_ = objects.Unmarshal(data, &cl)
		var rec Record
		_ = objects.Unmarshal(data, &rec)
		var op OpRecord
		_ = objects.Unmarshal(data, &op)
		var h Handle
		_ = h.UnmarshalCBOR(data)
		_ = h.UnmarshalJSON(data)
	})
}
