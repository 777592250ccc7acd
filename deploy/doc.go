// Package deploy holds what an operator installs next to the binaries: the
// Nginx configuration that puts several webs behind one public address
// (nginx/gopush.conf) and the systemd units of the three daemons
// (systemd/). Its tests run the real nginx with the shipped configuration
// and check the units with systemd-analyze.
package deploy
