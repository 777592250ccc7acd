package gobrpc

import (
	"errors"
	"go/token"
	"reflect"
)

// method is one RPC method of a served receiver.
type method struct {
	fn        reflect.Value // the method's func, receiver first
	argType   reflect.Type
	replyType reflect.Type // a pointer
}

var errorType = reflect.TypeFor[error]()

// rpcMethods returns the methods of rcvr that net/rpc would serve: exported,
// of the form func (T) Name(args A, reply *R) error with A and R exported or
// builtin types. It fails when there is none.
func rpcMethods(rcvr any) (map[string]*method, error) {
	if rcvr == nil {
		return nil, errors.New("no receiver")
	}
	typ := reflect.TypeOf(rcvr)
	methods := make(map[string]*method)
	for i := range typ.NumMethod() {
		m := typ.Method(i)
		if !m.IsExported() {
			continue
		}
		mt := m.Type
		if mt.NumIn() != 3 || mt.NumOut() != 1 || mt.Out(0) != errorType {
			continue
		}
		arg, reply := mt.In(1), mt.In(2)
		if !exportedOrBuiltin(arg) || reply.Kind() != reflect.Pointer || !exportedOrBuiltin(reply) {
			continue
		}
		methods[m.Name] = &method{fn: m.Func, argType: arg, replyType: reply}
	}
	if len(methods) == 0 {
		return nil, errors.New("type " + typ.String() + " has no exported methods of suitable type")
	}
	return methods, nil
}

// exportedOrBuiltin is net/rpc's rule for argument and reply types.
func exportedOrBuiltin(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return token.IsExported(t.Name()) || t.PkgPath() == ""
}
