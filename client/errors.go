package client

import (
	"fmt"
	"gopush/api"
)

// ServerError is an error reply of comet to a subscribe ("-a", "-n", ...).
type ServerError struct {
	Comet string // address of the comet that answered
	Code  byte   // 'p', 'a', 'c' or 'n' (docs/protocol.md §2.1)
}

func (e *ServerError) Error() string {
	var what string
	switch e.Code {
	case 'p':
		what = "parameter error"
	case 'a':
		what = "token refused"
	case 'c':
		what = "channel not found or not allowed"
	case 'n':
		what = "key does not belong to this comet"
	default:
		what = "unknown error"
	}
	return fmt.Sprintf("comet %s: -%c: %s", e.Comet, e.Code, what)
}

// Codes of web's answers (docs/protocol.md §3).
const (
	RetOK       = api.CodeOK
	RetNoNode   = api.CodeNoNode
	RetParam    = api.CodeParamErr
	RetInternal = api.CodeInternalErr
)

// APIError is a non-zero ret code from web.
type APIError struct {
	Path string // e.g. "/1/server/get"
	Ret  int
}

func (e *APIError) Error() string {
	var what string
	switch e.Ret {
	case RetNoNode:
		what = "no comet serves the key"
	case RetParam:
		what = "parameter error"
	case RetInternal:
		what = "internal error"
	default:
		what = "unknown code"
	}
	return fmt.Sprintf("web %s: ret %d: %s", e.Path, e.Ret, what)
}
