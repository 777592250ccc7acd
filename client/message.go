package client

import (
	"encoding/json"
	"errors"
	"fmt"
)

// wireMessage is a message as comet pushes it and as web's /1/msg/get
// lists it: {"msg":<raw JSON>,"mid":<int64>,"gid":0}.
type wireMessage struct {
	Msg json.RawMessage `json:"msg"`
	Mid int64           `json:"mid"`
	Gid int             `json:"gid"`
}

func (w wireMessage) message() (Message, error) {
	if w.Mid <= 0 {
		return Message{}, fmt.Errorf("message has no valid mid (%d)", w.Mid)
	}
	if len(w.Msg) == 0 {
		return Message{}, errors.New("message has no msg")
	}
	return Message{Mid: w.Mid, Gid: w.Gid, Msg: []byte(w.Msg)}, nil
}

// decodeMessage parses one pushed message frame.
func decodeMessage(b []byte) (*Message, error) {
	var w wireMessage
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("message is not JSON: %w", err)
	}
	m, err := w.message()
	if err != nil {
		return nil, err
	}
	return &m, nil
}
