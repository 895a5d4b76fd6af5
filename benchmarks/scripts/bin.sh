# bin.sh, sourced by the contention scripts: sets bin to the contention
# command, CONTENTION_BIN when set (a binary built from ./cmd/contention),
# else one built now into a temporary directory removed on exit.
bin=${CONTENTION_BIN:-}
if [ -z "$bin" ]; then
	bin=$(mktemp -d)/contention
	trap 'rm -rf "$(dirname "$bin")"' EXIT
	go build -o "$bin" ./cmd/contention
fi
