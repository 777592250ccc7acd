package api

// PushStored is the data of a push answer (ret 0) when the message was not
// handed to a comet but kept for its key all the same: the key's comet node
// had no serving instance, or its comet could not be reached (the call was
// never sent), and the push had expire > 0. The subscriber gets the message
// with its next /1/msg/get, under Mid. A push delivered as usual answers
// ret 0 with no data, as in 1.0.5 (docs/reliability.md).
type PushStored struct {
	Stored    bool  `json:"stored"`    // always true
	Delivered bool  `json:"delivered"` // always false
	Mid       int64 `json:"mid"`
}
