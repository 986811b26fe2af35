package integration

import (
	"encoding/json"
	"errors"
	"os/exec"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/frayhq/fray/dispatcher/iris" // registers fray's Iris protos
	"github.com/frayhq/fray/integration/backends"
)

// dumpIrisProtos prints, as JSON, the descriptors the installed marin-iris and
// marin-finelog compiled: message → field → [number, type, repeated], enum →
// value → number, service → method → [input, output].
const dumpIrisProtos = `
import json
from iris.rpc import controller_pb2, job_pb2, time_pb2, iris_logging_pb2
from finelog.rpc import logging_pb2
out = {"messages": {}, "enums": {}, "services": {}}
def enum(e):
    out["enums"][e.full_name] = {v.name: v.number for v in e.values}
def msg(m):
    out["messages"][m.full_name] = {f.name: [f.number, f.type, f.is_repeated] for f in m.fields}
    for n in m.nested_types: msg(n)
    for e in m.enum_types: enum(e)
for mod in (controller_pb2, job_pb2, time_pb2, iris_logging_pb2, logging_pb2):
    d = mod.DESCRIPTOR
    for m in d.message_types_by_name.values(): msg(m)
    for e in d.enum_types_by_name.values(): enum(e)
    for s in d.services_by_name.values():
        out["services"][s.full_name] = {m.name: [m.input_type.full_name, m.output_type.full_name] for m in s.methods}
print(json.dumps(out))
`

// legacyOnly are the parts of fray's Iris protos for older controllers (the
// deprecated GetTaskLogs), which the pinned release no longer has.
var legacyOnly = map[string]bool{
	"iris.cluster.Controller.GetTaskLogsRequest":  true,
	"iris.cluster.Controller.TaskLogBatch":        true,
	"iris.cluster.Controller.GetTaskLogsResponse": true,
	"iris.cluster.ControllerService.GetTaskLogs":  true,
}

// TestIrisProtosMatchTheInstalledMarinIris checks every message, field, enum
// value and RPC in fray's Iris .proto files against the descriptors of the
// pinned marin-iris release: same names, numbers, types and cardinality.
func TestIrisProtosMatchTheInstalledMarinIris(t *testing.T) {
	out, err := exec.Command(backends.IrisPython(t), "-c", dumpIrisProtos).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("dump marin-iris descriptors: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("dump marin-iris descriptors: %v", err)
	}
	var py struct {
		Messages map[string]map[string][3]any
		Enums    map[string]map[string]int
		Services map[string]map[string][2]string
	}
	if err := json.Unmarshal(out, &py); err != nil {
		t.Fatal(err)
	}
	var checked int
	var walkMsgs func(protoreflect.MessageDescriptors)
	walkEnums := func(es protoreflect.EnumDescriptors) {
		for i := range es.Len() {
			e := es.Get(i)
			want, ok := py.Enums[string(e.FullName())]
			if !ok {
				t.Errorf("enum %s: not in marin-iris", e.FullName())
				continue
			}
			for j := range e.Values().Len() {
				v := e.Values().Get(j)
				if n, ok := want[string(v.Name())]; !ok || n != int(v.Number()) {
					t.Errorf("enum value %s.%s = %d: marin-iris has %d (present %v)", e.FullName(), v.Name(), v.Number(), n, ok)
				}
				checked++
			}
		}
	}
	walkMsgs = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			m := ms.Get(i)
			if m.IsMapEntry() || legacyOnly[string(m.FullName())] {
				continue
			}
			want, ok := py.Messages[string(m.FullName())]
			if !ok {
				t.Errorf("message %s: not in marin-iris", m.FullName())
				continue
			}
			for j := range m.Fields().Len() {
				f := m.Fields().Get(j)
				w, ok := want[string(f.Name())]
				if !ok {
					t.Errorf("field %s: not in marin-iris", f.FullName())
					continue
				}
				if int(w[0].(float64)) != int(f.Number()) || int(w[1].(float64)) != int(f.Kind()) || w[2].(bool) != (f.Cardinality() == protoreflect.Repeated) {
					t.Errorf("field %s = (number %d, type %d, repeated %v): marin-iris has %v", f.FullName(), f.Number(), f.Kind(), f.Cardinality() == protoreflect.Repeated, w)
				}
				checked++
			}
			walkMsgs(m.Messages())
			walkEnums(m.Enums())
		}
	}
	for _, path := range []string{"iris/time.proto", "iris/job.proto", "iris/logging.proto", "iris/controller.proto", "finelog/logging.proto"} {
		fd, err := protoregistry.GlobalFiles.FindFileByPath(path)
		if err != nil {
			t.Fatalf("%s not registered: %v", path, err)
		}
		walkMsgs(fd.Messages())
		walkEnums(fd.Enums())
		for i := range fd.Services().Len() {
			s := fd.Services().Get(i)
			for j := range s.Methods().Len() {
				m := s.Methods().Get(j)
				if legacyOnly[string(m.FullName())] {
					continue
				}
				w, ok := py.Services[string(s.FullName())][string(m.Name())]
				if !ok || w[0] != string(m.Input().FullName()) || w[1] != string(m.Output().FullName()) {
					t.Errorf("rpc %s.%s(%s) %s: marin-iris has %v (present %v)", s.FullName(), m.Name(), m.Input().FullName(), m.Output().FullName(), w, ok)
				}
				checked++
			}
		}
	}
	t.Logf("%d fields, enum values and RPCs match marin-iris", checked)
}
