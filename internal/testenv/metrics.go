package testenv

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Series is one sample of a Prometheus text exposition: its name, labels
// and value.
type Series struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Metrics is one scrape of a /metrics endpoint.
type Metrics []Series

// Scrape gets http://addr/metrics and parses it, failing the test on any
// error or a status other than 200.
func Scrape(t testing.TB, addr string) Metrics {
	t.Helper()
	m, err := TryScrape(addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TryScrape is Scrape returning its error.
func TryScrape(addr string, timeout time.Duration) (Metrics, error) {
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("GET %s/metrics: %s: %s", addr, resp.Status, b)
	}
	return ParseMetrics(resp.Body)
}

// ParseMetrics reads the Prometheus text format (the subset client_golang
// writes: one sample per line, label values in double quotes).
func ParseMetrics(r io.Reader) (Metrics, error) {
	var out Metrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := Series{Labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(line, "{ "); i >= 0 && line[i] == '{' {
			s.Name = line[:i]
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("bad sample line %q", line)
			}
			if err := parseLabels(line[i+1:j], s.Labels); err != nil {
				return nil, fmt.Errorf("%v in %q", err, line)
			}
			rest = strings.TrimSpace(line[j+1:])
		} else {
			name, v, ok := strings.Cut(line, " ")
			if !ok {
				return nil, fmt.Errorf("bad sample line %q", line)
			}
			s.Name, rest = name, v
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("no value in %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("bad value in %q", line)
		}
		s.Value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

func parseLabels(s string, into map[string]string) error {
	for s != "" {
		name, rest, ok := strings.Cut(s, "=")
		if !ok || !strings.HasPrefix(rest, `"`) {
			return fmt.Errorf("bad labels %q", s)
		}
		var val strings.Builder
		i := 1
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
				switch rest[i] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(rest[i])
				}
				continue
			}
			val.WriteByte(rest[i])
		}
		if i >= len(rest) {
			return fmt.Errorf("unterminated label value")
		}
		into[strings.TrimSpace(name)] = val.String()
		s = strings.TrimPrefix(rest[i+1:], ",")
	}
	return nil
}

// Get sums the samples named name whose labels include every pair of
// labels ("key", "value", ...). A series that does not exist counts 0.
func (m Metrics) Get(name string, labels ...string) float64 {
	sum := 0.0
	for _, s := range m {
		if s.Name == name && s.has(labels) {
			sum += s.Value
		}
	}
	return sum
}

// Has reports whether a sample named name exists.
func (m Metrics) Has(name string) bool {
	for _, s := range m {
		if s.Name == name {
			return true
		}
	}
	return false
}

func (s Series) has(labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		if s.Labels[labels[i]] != labels[i+1] {
			return false
		}
	}
	return true
}
