package iris

// The Go code under internal/ is generated from proto/ by buf with the pinned
// protoc-gen-go and protoc-gen-connect-go (see proto/buf.gen.yaml); no protoc
// is needed. Regenerate with `go generate ./dispatcher/iris/`.
//go:generate sh -c "cd proto && go run github.com/bufbuild/buf/cmd/buf@v1.75.0 generate"
