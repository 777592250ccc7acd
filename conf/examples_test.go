package conf

import (
	"encoding"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// The example files conf/comet.toml, web.toml and message.toml document
// every key with its default. These tests keep them honest: each loads, its
// values are exactly the defaults, and no key of the structs is missing.

var examples = []struct {
	file     string
	load     func(string) (any, error)
	defaults func() any
	// keys the example leaves out on purpose, with the reason in a comment
	// in the file
	omitted map[string]bool
}{
	{"comet.toml", func(p string) (any, error) { return LoadComet(p) }, func() any { return DefaultComet() }, nil},
	{"web.toml", func(p string) (any, error) { return LoadWeb(p) }, func() any { return DefaultWeb() },
		map[string]bool{"rpc.bind": true, "rpc.advertise": true, "rpc.allow": true}}, // web serves no RPC
	{"message.toml", func(p string) (any, error) { return LoadMessage(p) }, func() any { return DefaultMessage() },
		map[string]bool{"rpc.ping": true, "rpc.retry": true}}, // message calls no peer
}

func TestExampleFilesAreTheDefaults(t *testing.T) {
	for _, ex := range examples {
		got, err := ex.load(ex.file)
		if err != nil {
			t.Errorf("%s: %v", ex.file, err)
			continue
		}
		want := ex.defaults()
		emptyToNil(reflect.ValueOf(got).Elem())
		emptyToNil(reflect.ValueOf(want).Elem())
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s does not match the defaults in load.go:\nfile     %+v\ndefaults %+v", ex.file, got, want)
		}
	}
}

func TestExampleFilesListEveryKey(t *testing.T) {
	for _, ex := range examples {
		var md toml.MetaData
		md, err := toml.DecodeFile(ex.file, ex.defaults())
		if err != nil {
			t.Errorf("%s: %v", ex.file, err)
			continue
		}
		keys := structKeys(reflect.TypeOf(ex.defaults()).Elem(), nil)
		if len(keys) < 10 {
			t.Fatalf("found only %d keys in the %s struct: %v", len(keys), ex.file, keys)
		}
		for _, key := range keys {
			name := strings.Join(key, ".")
			if md.IsDefined(key...) == ex.omitted[name] {
				if ex.omitted[name] {
					t.Errorf("%s sets %s, which it should leave out", ex.file, name)
				} else {
					t.Errorf("%s does not document %s", ex.file, name)
				}
			}
		}
	}
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	tomlUnmarshaler = reflect.TypeFor[toml.Unmarshaler]()
)

// structKeys lists the TOML keys (as paths) of every value a config struct
// takes: a struct field is a table, anything else is a value.
func structKeys(t reflect.Type, prefix []string) [][]string {
	var out [][]string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := append(append([]string(nil), prefix...), name)
		pt := reflect.PointerTo(f.Type)
		if f.Type.Kind() == reflect.Struct && !pt.Implements(textUnmarshaler) && !pt.Implements(tomlUnmarshaler) {
			out = append(out, structKeys(f.Type, path)...)
			continue
		}
		out = append(out, path)
	}
	return out
}

// emptyToNil sets empty slices and maps to nil, so that `origins = []` in a
// file equals a default that never set the field.
func emptyToNil(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			emptyToNil(v.Field(i))
		}
	case reflect.Slice, reflect.Map:
		if v.Len() == 0 && v.CanSet() {
			v.Set(reflect.Zero(v.Type()))
		}
	}
}
