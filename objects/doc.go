// Package objects owns fray's values at rest: the deterministic CBOR codec
// every record goes through (Marshal, Unmarshal), the Ref record that names
// a stored object by the SHA-256 of its bytes, and Store, which puts and gets
// objects in the JetStream object store bucket FRAY_OBJECTS.
//
// Values up to Store.InlineThreshold (256 KiB by default) travel inline in
// task and result records; larger ones are Put and travel as a Ref:
//
//	st, err := objects.New(ctx, js, objects.Options{})
//	ref, err := st.Put(ctx, bigValue)       // CBOR-encode and store
//	var v BigValue
//	err = st.Get(ctx, ref, &v)              // fetch, verify, decode
//
// PutReader and GetReader stream values of any size in bounded memory.
// Objects are content-addressed: putting the same bytes twice stores them
// once. A missing, deleted or expired object is ErrNotFound.
package objects
