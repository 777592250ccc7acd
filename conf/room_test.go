package conf

import (
	"errors"
	"testing"
)

func TestMessageRoomAndPublicKeysAreChecked(t *testing.T) {
	bad := []struct{ toml, key string }{
		{"room.prefix = \"\"", "room.prefix"},
		{"room.max = 0", "room.max"},
		{"public.key = \"\"", "public.key"},
		{"public.key = \"gopush:room:x\"", "public.key"}, // inside the rooms' prefix
		{"public.store = 0", "public.store"},
	}
	for _, tc := range bad {
		_, err := LoadMessage(write(t, "message.toml", tc.toml))
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != tc.key {
			t.Errorf("%s: got %v, want an error naming %s", tc.toml, err, tc.key)
		}
	}
	m, err := LoadMessage(write(t, "message.toml", "room.prefix = \"r:\"\nroom.max = 5\npublic.key = \"pub\"\npublic.store = 3"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Room.Prefix != "r:" || m.Room.Max != 5 || m.Public.Key != "pub" || m.Public.Store != 3 {
		t.Errorf("loaded %+v %+v", m.Room, m.Public)
	}
}
