#!/usr/bin/env bash
# One-command load test: dataset + index (cached), Redis and the API (N workers) on
# loopback, Locust headless for a bounded time, then the thresholds. Everything this
# script starts, it stops (trap). Exit status: 0 thresholds passed, 1 a threshold
# failed, 2 bad arguments, 3 the harness itself failed (a server did not start...).
#
#   bash loadtests/run.sh                       # 5,000 records, fast profile, 60 s (make loadtest)
#   bash loadtests/run.sh --rows 3000 --profile test --duration 30   # a quick one
#   bash loadtests/run.sh --full                # 1,000,000 records: the capacity run (make loadtest-full)
#   bash loadtests/run.sh --full --prepare-only # just build (or find in the cache) its index
#
# The last line printed says where the verdict (summary.md) and Locust's report are.
# See loadtests/README.md for what each scenario does and how to read the results.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV_BIN="${LOADTEST_VENV_BIN:-$ROOT/.venv/bin}"
PY="$VENV_BIN/python"

#: make loadtest: an index that builds in well under a minute yet shows every behaviour under
#: test (limits, floor, uniform answers, each attack): the index size does not change them.
DEFAULT_ROWS=5000
#: The capacity run's index (--full): a realistic size, built once and cached (about an hour).
FULL_ROWS=1000000
ROWS="${LOADTEST_ROWS:-$DEFAULT_ROWS}"
PROFILE="${LOADTEST_PROFILE:-fast}"
SEED="${LOADTEST_SEED:-2026}"
WORKERS="${LOADTEST_WORKERS:-2}"
USERS="${LOADTEST_USERS:-}"
DURATION="${LOADTEST_DURATION:-60}"
SPAWN_RATE="${LOADTEST_SPAWN_RATE:-50}"
TARGET_RATE="${LOADTEST_TARGET_RATE:-15}"
BUILD_WORKERS="${LOADTEST_BUILD_WORKERS:-0}"
BUILD_TIMEOUT="${LOADTEST_BUILD_TIMEOUT:-14400}"
RESULTS="${LOADTEST_RESULTS:-$ROOT/loadtests/results}"
PREPARE_ONLY=0
DRY_RUN=0

usage() {
    cat <<EOF
usage: bash loadtests/run.sh [options]
  --rows N            records in the generated export (default $ROWS)
  --profile NAME      Argon2 profile of the index: test|fast|standard (default $PROFILE)
  --seed N            generator seed; with rows and profile, the cache key (default $SEED)
  --workers N         API worker processes sharing one Redis (default $WORKERS)
  --users N           Locust users in total (default: enough patients for the target rate)
  --duration S        Locust run time in seconds (default $DURATION)
  --spawn-rate R      users started per second (default $SPAWN_RATE)
  --target-rate R     patient checks per second the run must reach (default $TARGET_RATE)
  --build-workers N   hashing processes for the index build (default: all cores)
  --results DIR       where runs and the dataset cache go (default loadtests/results)
  --full              the capacity run: $FULL_ROWS records, fast profile (an hour's build
                      the first time, then cached); options after it still apply
  --prepare-only      generate and build (or find in the cache) the dataset, then stop
  --dry-run           check the options, say what would run, start nothing
Settings of the API under test come from SELFCHECK_* variables (limits, floor...);
test knobs from LOADTEST_* variables (see loadtests/config.py).
EOF
}

die() {
    echo "run.sh: $*" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --rows) ROWS="${2:?}"; shift 2 ;;
        --profile) PROFILE="${2:?}"; shift 2 ;;
        --seed) SEED="${2:?}"; shift 2 ;;
        --workers) WORKERS="${2:?}"; shift 2 ;;
        --users) USERS="${2:?}"; shift 2 ;;
        --duration) DURATION="${2:?}"; shift 2 ;;
        --spawn-rate) SPAWN_RATE="${2:?}"; shift 2 ;;
        --target-rate) TARGET_RATE="${2:?}"; shift 2 ;;
        --build-workers) BUILD_WORKERS="${2:?}"; shift 2 ;;
        --results) RESULTS="${2:?}"; shift 2 ;;
        --full) ROWS="$FULL_ROWS"; PROFILE=fast; shift ;;
        --prepare-only) PREPARE_ONLY=1; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

for pair in "rows:$ROWS" "seed:$SEED" "workers:$WORKERS" "duration:$DURATION" \
    "build-workers:$BUILD_WORKERS" "spawn-rate:$SPAWN_RATE"; do
    [[ "${pair#*:}" =~ ^[0-9]+$ ]] || die "--${pair%%:*} must be a whole number"
done
[ -z "$USERS" ] || [[ "$USERS" =~ ^[0-9]+$ ]] || die "--users must be a whole number"
[[ "$TARGET_RATE" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--target-rate must be a number"
case "$PROFILE" in test | fast | standard) ;; *) die "--profile must be test, fast or standard" ;; esac
[ "$ROWS" -ge 100 ] || die "--rows must be at least 100"
[ "$DURATION" -ge 5 ] || die "--duration must be at least 5 seconds"
[ "$WORKERS" -ge 1 ] || die "--workers must be at least 1"

mkdir -p "$RESULTS"
RESULTS="$(cd "$RESULTS" && pwd)"

# --- dataset and index, cached by (rows, profile, seed, identity rules) --------------
# A 1M-record build hashes every record once with Argon2: minutes to hours depending on
# the profile and the cores. The cache makes reruns start in seconds; a half-built
# entry never counts, because the directory is renamed into place only when complete.
# The identity rules are in the key: an index hashed under older rules is refused by the API.
RULES="$("$PY" -c 'from lookup_index.normalise import CANONICAL_VERSION as v; print(v)')"
CACHE="$RESULTS/cache/rows-$ROWS-$PROFILE-seed-$SEED-rules-$RULES"
if [ "$DRY_RUN" = 1 ]; then
    if [ -f "$CACHE/index.bin" ]; then
        echo "run.sh: dry run: dataset cached in $CACHE"
    else
        echo "run.sh: dry run: would generate $ROWS records and build a $PROFILE-profile index"
    fi
    if [ "$PREPARE_ONLY" = 0 ]; then
        export LOADTEST_TARGET_RATE="$TARGET_RATE" LOADTEST_DURATION="$DURATION"
        echo "run.sh: dry run: would run Locust for $DURATION s ($WORKERS API workers) with" \
            "$(PYTHONPATH="$ROOT" "$PY" -m loadtests.config steady-plan "${USERS:-auto}" "$SPAWN_RATE")"
    fi
    exit 0
fi
if [ ! -f "$CACHE/index.bin" ]; then
    STAGING="$RESULTS/cache/.staging-rows-$ROWS-$PROFILE-seed-$SEED-$$"
    rm -rf "$STAGING"
    mkdir -p "$STAGING"
    trap 'rm -rf "$STAGING"' EXIT
    echo "run.sh: generating $ROWS synthetic records (seed $SEED)..."
    "$VENV_BIN/lookup-index" keygen --out "$STAGING/loadtest.key" >/dev/null
    "$VENV_BIN/lookup-index" generate --rows "$ROWS" --seed "$SEED" \
        --out "$STAGING/export.csv" --probes "$STAGING/probes.csv" >"$STAGING/generate.log"
    echo "run.sh: $(PYTHONPATH="$ROOT" "$PY" -m loadtests.build_estimate --rows "$ROWS" \
        --profile "$PROFILE" --workers "$BUILD_WORKERS" --seed "$SEED")"
    echo "run.sh: building the $PROFILE-profile index (bounded to ${BUILD_TIMEOUT} s)..."
    build_start=$(date +%s.%N)
    timeout --kill-after=30 "$BUILD_TIMEOUT" "$VENV_BIN/lookup-index" build \
        --input "$STAGING/export.csv" --key-file "$STAGING/loadtest.key" \
        --out "$STAGING/index.bin" --profile "$PROFILE" --workers "$BUILD_WORKERS" \
        --incident loadtest --incident-label "Load test (synthetic data)" --quiet \
        >"$STAGING/build.log"
    build_end=$(date +%s.%N)
    {
        echo "rows=$ROWS profile=$PROFILE seed=$SEED build_workers=$BUILD_WORKERS"
        echo "wall_seconds=$(awk -v a="$build_start" -v b="$build_end" 'BEGIN { printf "%.1f", b - a }')"
        echo "nproc=$(nproc) loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)"
    } >"$STAGING/build-conditions.txt"
    rm -rf "$CACHE"
    mv "$STAGING" "$CACHE"
    trap - EXIT
fi
echo "run.sh: dataset $CACHE"
if [ "$PREPARE_ONLY" = 1 ]; then
    exit 0
fi

# --- the run ------------------------------------------------------------------------
RUN_DIR="$RESULTS/$(date -u +%Y%m%dT%H%M%SZ)-$$"
mkdir -p "$RUN_DIR/redis"
REDIS_PID=""
API_PID=""
LOCUST_PID=""

stop_group() {
    # Each server runs in its own session (setsid), so its process group holds uvicorn's
    # workers too; TERM first, KILL after a bounded wait.
    local pid="$1" name="$2" i
    [ -n "$pid" ] || return 0
    kill -TERM -- "-$pid" 2>/dev/null || return 0
    for i in $(seq 1 150); do
        kill -0 -- "-$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "run.sh: $name did not stop in 15 s, killing it" >&2
    kill -KILL -- "-$pid" 2>/dev/null || true
}

cleanup() {
    if [ -n "$LOCUST_PID" ]; then
        # timeout(1) passes the TERM on to Locust, which writes its reports and exits.
        kill -TERM "$LOCUST_PID" 2>/dev/null || true
        wait "$LOCUST_PID" 2>/dev/null || true
    fi
    stop_group "$API_PID" API
    stop_group "$REDIS_PID" redis-server
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() {
    # wait_for URL-or-port SECONDS NAME: poll until it answers, bounded.
    local what="$1" seconds="$2" name="$3" deadline
    deadline=$(($(date +%s) + seconds))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if [[ "$what" == http* ]]; then
            # Python rather than curl: the venv is always there, curl not on every image.
            "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
                "$what" 2>/dev/null && return 0
        else
            (exec 3<>"/dev/tcp/127.0.0.1/$what") 2>/dev/null && return 0
        fi
        sleep 0.2
    done
    echo "run.sh: $name not ready after $seconds s" >&2
    return 1
}

REDIS_PORT=$(free_port)
setsid /usr/bin/env redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
    --appendonly no --dir "$RUN_DIR/redis" >"$RUN_DIR/redis.log" 2>&1 &
REDIS_PID=$!
wait_for "$REDIS_PORT" 20 redis-server || exit 3

API_PORT=$(free_port)
export SELFCHECK_INDEX_PATH="$CACHE/index.bin"
export SELFCHECK_KEY_FILE="$CACHE/loadtest.key"
if [ "$PROFILE" = test ]; then
    export SELFCHECK_ALLOW_TEST_PROFILE=true  # the smoke run's cheap index; never in production
fi
export SELFCHECK_RATE_LIMIT_STORAGE="redis://127.0.0.1:$REDIS_PORT/0"
export SELFCHECK_WORKERS="$WORKERS"
export SELFCHECK_HOST=127.0.0.1
export SELFCHECK_PORT="$API_PORT"
# LOAD-TEST ONLY: Locust is the "proxy" on 127.0.0.1 and presents each simulated client's
# network in X-Forwarded-For, so per-network limits see many networks as in production.
# Never trust loopback like this in a deployment: it lets any local process pick its address.
export SELFCHECK_TRUSTED_PROXIES=127.0.0.1/32
export SELFCHECK_LOG_LEVEL="${SELFCHECK_LOG_LEVEL:-warning}"
# The other SELFCHECK_* settings (limits, floor, response size) keep the service's
# defaults unless the caller exported them: the load test measures the production limits.
setsid "$PY" -m app serve >"$RUN_DIR/api.log" 2>&1 &
API_PID=$!
wait_for "http://127.0.0.1:$API_PORT/readyz" 120 "API" || {
    tail -n 20 "$RUN_DIR/api.log" >&2
    exit 3
}

export LOADTEST_HOST="http://127.0.0.1:$API_PORT"
export LOADTEST_PROBES="$CACHE/probes.csv"
export LOADTEST_LEAKED_LIST="$CACHE/export.csv"
export LOADTEST_TARGET_RATE="$TARGET_RATE"
export LOADTEST_DURATION="$DURATION"
export LOADTEST_RUN_DIR="$RUN_DIR"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "$USERS" ]; then
    USERS=$("$PY" -m loadtests.config suggest-users)
fi

{
    echo "started_utc=$(date -u +%FT%TZ)"
    echo "rows=$ROWS profile=$PROFILE seed=$SEED api_workers=$WORKERS"
    echo "users=$USERS spawn_rate=$SPAWN_RATE duration_s=$DURATION target_rate=$TARGET_RATE"
    echo "nproc=$(nproc) loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)"
    env | grep -E '^SELFCHECK_(RESPONSE|LIMITS|GLOBAL|WORKERS|TRUSTED)' | sort
} >"$RUN_DIR/conditions.txt"

echo "run.sh: Locust for ${DURATION} s against $LOADTEST_HOST ($WORKERS API workers) with" \
    "$("$PY" -m loadtests.config steady-plan "$USERS" "$SPAWN_RATE")"
# Bounded twice: Locust's own --run-time, and timeout(1) in case it hangs on shutdown.
# In the background so that a TERM to this script is handled at once (the trap stops all).
timeout --kill-after=15 $((DURATION + 90)) "$VENV_BIN/locust" \
    -f "$ROOT/loadtests/locustfile.py" --headless --host "$LOADTEST_HOST" \
    --users "$USERS" --spawn-rate "$SPAWN_RATE" --run-time "${DURATION}s" --stop-timeout 5 \
    --csv "$RUN_DIR/locust" --csv-full-history --html "$RUN_DIR/report.html" \
    --only-summary --loglevel WARNING --exit-code-on-error 0 \
    >"$RUN_DIR/locust.log" 2>&1 &
LOCUST_PID=$!
set +e
wait "$LOCUST_PID"
locust_status=$?
set -e
LOCUST_PID=""
echo "loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RUN_DIR/conditions.txt"
if [ "$locust_status" -ne 0 ]; then
    echo "run.sh: Locust exited with $locust_status (see $RUN_DIR/locust.log)" >&2
    tail -n 20 "$RUN_DIR/locust.log" >&2
    exit 3
fi

set +e
"$PY" -m loadtests.thresholds "$RUN_DIR"
verdict=$?
set -e
case "$verdict" in 0) outcome=PASSED ;; 1) outcome=FAILED ;; *) outcome="not judged (thresholds exited $verdict)" ;; esac
# The last line, always: where the verdict and Locust's own report are.
echo "run.sh: $outcome; verdict $RUN_DIR/summary.md, Locust report $RUN_DIR/report.html"
exit "$verdict"
