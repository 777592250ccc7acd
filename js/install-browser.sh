#!/bin/sh
# Installs what the browser test (js/browser_test.go) needs: Debian's
# Chromium and ChromeDriver. Never a downloaded browser build.
# Safe to run again: it does nothing when both are already there.
set -eu
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-browser.sh: chromium/chromedriver missing and not root; run: apt-get install -y chromium chromium-driver" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
/usr/bin/chromium --version
/usr/bin/chromedriver --version
