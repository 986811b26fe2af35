package objects_test

import (
	"context"
	"fmt"
	"log"

	"github.com/frayhq/fray/broker"
	"github.com/frayhq/fray/objects"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func Example() {
	ctx := context.Background()
	srv, err := broker.Start(ctx, broker.Options{Port: -1}) // temporary store
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := broker.Provision(ctx, js, nc.ConnectedServerVersion(), broker.ProvisionOptions{}); err != nil {
		log.Fatal(err)
	}

	st, err := objects.New(ctx, js, objects.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ref, err := st.Put(ctx, map[string]int{"apples": 3})
	if err != nil {
		log.Fatal(err)
	}
	again, _ := st.Put(ctx, map[string]int{"apples": 3}) // same bytes: same ref, stored once
	var back map[string]int
	if err := st.Get(ctx, ref, &back); err != nil {
		log.Fatal(err)
	}
	fmt.Println(ref)
	fmt.Println(again == ref, back["apples"])
	// Output:
	// FRAY_OBJECTS/sha256:784f9f527885915ad5afae56921795f952eb99a256845430d8eb8fa7b59d5fe3 (9 bytes)
	// true 3
}
