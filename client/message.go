package client

import (
	"errors"
	"fmt"
	"gopush/api"
)

// fromWire checks a message as comet pushes it and as web's /1/msg/get
// lists it (docs/protocol.md §2.1, §3.1).
func fromWire(w api.Message) (Message, error) {
	if w.MsgId <= 0 {
		return Message{}, fmt.Errorf("message has no valid mid (%d)", w.MsgId)
	}
	if len(w.Msg) == 0 {
		return Message{}, errors.New("message has no msg")
	}
	return Message{Mid: w.MsgId, Gid: int(w.GroupId), Msg: []byte(w.Msg)}, nil
}

// decodeMessage parses one pushed message frame.
func decodeMessage(b []byte) (*Message, error) {
	w, err := api.DecodeMessage(b, false) // the client always sends a version
	if err != nil {
		return nil, err
	}
	m, err := fromWire(w)
	if err != nil {
		return nil, err
	}
	return &m, nil
}
