// Package js holds the browser client of gopush (gopush.js, no build step)
// and its example page (example.html). The Go package only carries their
// tests: the node unit tests of gopush.js, and a browser test that drives
// Debian's Chromium through chromedriver against a real cluster.
package js
