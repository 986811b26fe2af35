package jobs

// SubmitRequest asks a dispatcher to create (or adopt) a job.
type SubmitRequest struct {
	V       int        `cbor:"v"`
	ID      string     `cbor:"id"`
	Parent  string     `cbor:"parent,omitempty"`
	Request JobRequest `cbor:"request"`
}

// SubmitReply answers a SubmitRequest.
type SubmitReply struct {
	V       int     `cbor:"v"`
	Record  *Record `cbor:"record,omitempty"`
	Adopted bool    `cbor:"adopted,omitempty"`
	Code    string  `cbor:"code,omitempty"`
	Error   string  `cbor:"error,omitempty"`
}
