package bench

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gopush/api"
)

// roomChunk is the number of keys per room/join request: well under
// web's admin.maxkeys and admin.maxbody defaults.
const roomChunk = 5000

// JoinRoom puts keys into room rid through web's admin API
// (/1/admin/room/join, docs/protocol.md §3.3), roomChunk keys a request,
// so that push/room reaches them.
func JoinRoom(admin, rid string, keys []string) error {
	c := newHTTPConn(admin, 30*time.Second)
	defer c.Close()
	target := "/1/admin/room/join?rid=" + url.QueryEscape(rid)
	for lo := 0; lo < len(keys); lo += roomChunk {
		hi := min(lo+roomChunk, len(keys))
		body := []byte(`{"k":` + strconv.Quote(strings.Join(keys[lo:hi], ",")) + `}`)
		ret, _, err := post(c, target, body)
		if err != nil {
			return fmt.Errorf("room/join %s: %w", rid, err)
		}
		if ret != api.CodeOK {
			return fmt.Errorf("room/join %s: ret %d", rid, ret)
		}
	}
	return nil
}

// DeleteRoom removes room rid (/1/admin/room/del).
func DeleteRoom(admin, rid string) error {
	c := newHTTPConn(admin, 30*time.Second)
	defer c.Close()
	ret, _, err := post(c, "/1/admin/room/del?rid="+url.QueryEscape(rid), nil)
	if err == nil && ret != api.CodeOK {
		err = fmt.Errorf("ret %d", ret)
	}
	if err != nil {
		return fmt.Errorf("room/del %s: %w", rid, err)
	}
	return nil
}
