# Sourced by .ci/run: start or wait for the services the test suite talks to.
# PostgreSQL and Redis normally run before the session starts on these machines; when
# they do not, start them with the machine's own commands. The MongoDB-wire-protocol
# server (SecantusDB, a test dependency) is started here, in memory.

wait_for() {  # wait_for NAME SECONDS COMMAND...
    local name=$1 seconds=$2
    shift 2
    for _ in $(seq 1 "$seconds"); do
        if "$@" >/dev/null 2>&1; then
            echo "$name is up"
            return 0
        fi
        sleep 1
    done
    echo "$name did not come up within ${seconds}s" >&2
    return 1
}

port_open() {  # port_open PORT
    python -c "import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(('127.0.0.1', int(sys.argv[1]))))" "$1"
}

start_postgres() {
    if port_open 5432; then echo "PostgreSQL is up"; return 0; fi
    echo "starting PostgreSQL"
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    fi
    wait_for PostgreSQL 60 port_open 5432
}

start_redis() {
    if port_open 6379; then echo "Redis is up"; return 0; fi
    echo "starting Redis"
    if command -v redis-server >/dev/null 2>&1; then
        mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
            --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    fi
    wait_for Redis 30 port_open 6379
}

start_services() {
    log "services"
    start_postgres
    start_redis
}
