package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unitKeys reads a unit file into section.key -> values.
func unitKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: line %q is not key=value", path, line)
			}
			keys[section+"."+k] = append(keys[section+"."+k], v)
		}
	}
	return keys
}

// The units run each daemon as the gopush user with its config from
// /etc/gopush, restart it on failure, stop it with SIGTERM (on which the
// daemons leave ZooKeeper first), and systemd-analyze finds nothing wrong
// with them.
func TestSystemdUnits(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed (Debian package systemd); it checks the unit files")
	}
	for _, name := range []string{"comet", "web", "message"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("systemd", "gopush-"+name+".service")
			k := unitKeys(t, path)
			want := map[string]string{
				"Service.ExecStart":       "/usr/local/bin/" + name + " -c /etc/gopush/" + name + ".toml",
				"Service.User":            "gopush",
				"Service.Restart":         "on-failure",
				"Service.KillSignal":      "SIGTERM",
				"Service.NoNewPrivileges": "yes",
				"Install.WantedBy":        "multi-user.target",
			}
			for key, v := range want {
				if got := k[key]; len(got) != 1 || got[0] != v {
					t.Errorf("%s: %s = %q, want %q", path, key, got, v)
				}
			}
			if len(k["Service.LimitNOFILE"]) != 1 {
				t.Errorf("%s: no LimitNOFILE", path)
			}
			// Started means answering on metrics.bind: comet's /readyz, the
			// others' /healthz (see the comments in the units), on the
			// port of conf/<name>.toml.
			health := map[string]string{"comet": "localhost:6973/readyz", "web": "localhost:8191/healthz", "message": "localhost:8071/healthz"}[name]
			if post := k["Service.ExecStartPost"]; len(post) != 1 || !strings.HasPrefix(post[0], "/usr/bin/curl ") || !strings.HasSuffix(post[0], "http://"+health) {
				t.Errorf("%s: ExecStartPost = %q, want curl waiting for http://%s", path, post, health)
			}
			// systemd-analyze verify wants the binary to exist: check a
			// copy that runs /bin/true instead.
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			tmp := filepath.Join(t.TempDir(), filepath.Base(path))
			unit := strings.Replace(string(b), "/usr/local/bin/"+name, "/bin/true", 1)
			if err := os.WriteFile(tmp, []byte(unit), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(analyze, "verify", tmp).CombinedOutput()
			if err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", path, err, out)
			}
		})
	}
}

// The sysusers file creates the user the units run as.
func TestSysusers(t *testing.T) {
	b, err := os.ReadFile("systemd/gopush.sysusers.conf")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "u" && f[1] == "gopush" {
			found = true
		}
	}
	if !found {
		t.Error("gopush.sysusers.conf does not create the gopush user")
	}
}
