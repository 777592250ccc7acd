package web

import (
	"context"
	"errors"
	"fmt"
	"gopush/api"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
)

// errNoNode means the ring has no node for the key, or the node has no
// serving comet instance (or that instance registered no RPC address).
var errNoNode = errors.New("no comet node serves the key")

// paramError is a problem with the request itself.
type paramError struct{ msg string }

func (e *paramError) Error() string { return e.msg }

func errParam(format string, args ...any) error {
	return &paramError{msg: fmt.Sprintf(format, args...)}
}

// errTooLarge is returned when a request body is over admin.maxbody.
type errTooLarge struct{ limit int64 }

func (e *errTooLarge) Error() string {
	return fmt.Sprintf("request body is larger than %d bytes", e.limit)
}

// errTooManyKeys is a presence question about more than max keys.
type errTooManyKeys struct{ max int }

func (e *errTooManyKeys) Error() string {
	return fmt.Sprintf("more than %d keys in one question", e.max)
}

// dataError is an error whose answer carries data beside its code (push/batch
// names the entry it refused, docs/protocol.md §3.11); every other error
// answer has none.
type dataError interface {
	error
	replyData() any
}

// codeOf maps an error to its answer code (docs/protocol.md §3). It is the only place that does.
func codeOf(err error) int {
	var pe *paramError
	var tl *errTooLarge
	var tm *errTooManyKeys
	var be *errBatchEntry
	switch {
	case err == nil:
		return api.CodeOK
	case errors.As(err, &tm):
		return api.CodeTooManyKeys
	case errors.Is(err, errNoNode):
		return api.CodeNoNode
	case errors.Is(err, errRoomFull):
		return api.CodeRoomFull
	case errors.As(err, &pe), errors.As(err, &tl), errors.As(err, &be):
		return api.CodeParamErr
	default:
		return api.CodeInternalErr
	}
}

// statusOf is the HTTP status for an error: 413 for an oversized body, 200
// for every other answer (the code is in the body, as in 1.0.5).
func statusOf(err error) int {
	var tl *errTooLarge
	if errors.As(err, &tl) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusOK
}

// writeReply writes rep as JSON, or as JSONP cb(...) when cb is not empty.
// A callback with characters that do not belong in a function name is a
// parameter error answered as plain JSON, so that nothing a caller sends
// is echoed into a script.
func writeReply(w http.ResponseWriter, log *slog.Logger, status int, cb string, rep api.Reply) {
	if cb != "" && !api.ValidCallback(cb) {
		cb = ""
		rep = api.Reply{Ret: api.CodeParamErr, Msg: rep.Msg}
		status = http.StatusOK
	}
	body, ctype, err := api.EncodeReply(rep, cb)
	if err != nil {
		// Only a Data value that cannot be marshalled gets here: a bug.
		log.Error("marshal HTTP reply", "err", err)
		body, ctype, _ = api.EncodeReply(api.Reply{Ret: api.CodeInternalErr}, "")
	}
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(status)
	w.Write(body)
}

// caller is what web needs of an RPC peer (a comet's client, the message
// pool): one call that returns within its deadline.
type caller interface {
	Call(ctx context.Context, method string, args, reply any) error
}

// handlerFunc does the work of one endpoint and returns the "data" of the
// answer (nil for none) or an error that codeOf maps to an answer code (docs/protocol.md §3).
type handlerFunc func(w http.ResponseWriter, r *http.Request) (data any, err error)

// endpoint wraps fn with what every endpoint shares: the method check (405),
// the JSONP callback parameter (cbParam; "" for none), the "msg":"ok" of the
// unversioned paths (old), error logging and the reply.
func endpoint(log *slog.Logger, methods []string, cbParam string, old bool, fn handlerFunc) http.HandlerFunc {
	allow := strings.Join(methods, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		cb := ""
		if cbParam != "" {
			cb = r.URL.Query().Get(cbParam)
		}
		rep := api.Reply{}
		if old {
			rep.Msg = "ok"
		}
		if !slices.Contains(methods, r.Method) {
			w.Header().Set("Allow", allow)
			rep.Ret = api.CodeParamErr
			writeReply(w, log, http.StatusMethodNotAllowed, cb, rep)
			return
		}
		data, err := fn(w, r)
		if err != nil {
			rep.Ret = codeOf(err)
			if rep.Ret == api.CodeInternalErr {
				log.Warn("request failed", "path", r.URL.Path, "err", err)
			} else {
				log.Debug("request refused", "path", r.URL.Path, "code", rep.Ret, "err", err)
			}
			rep.Data = retryData(err) // push ids (push_id.go); nil otherwise
			var de dataError
			if errors.As(err, &de) {
				rep.Data = de.replyData() // push/batch names the entry it refused
			}
			writeReply(w, log, statusOf(err), cb, rep)
			return
		}
		rep.Data = data
		writeReply(w, log, http.StatusOK, cb, rep)
	}
}

// readBody reads the whole request body, refusing one over limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &errTooLarge{limit: limit}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &errTooLarge{limit: limit}
		}
		return nil, errParam("reading the request body: %v", err)
	}
	return body, nil
}
