#!/usr/bin/env python3
# pgbench, 8 clients, variants alternating, with the server CPU each transaction cost: the pgbench
# backends' user+system time, polled from /proc while pgbench runs (so the server must run on this
# machine). CPU time is steadier than tps on a shared machine. Each run starts after a CHECKPOINT.
#   bench/pgbench/server-cpu.py ROUNDS SECONDS name:database:script.sql ...
# The scripts insert into crier.events (publish-single: the statement src/publish.ts sends, one
# event; publish-batch: 100 events) or into a bare table (bare-insert.sql, bare-batch.sql: create
# public.bare as the raw baseline's raw_jobs). Databases: migrated with `DATABASE_URL=... npx tsx
# cli/main.ts migrate`, plus a subscription on the topic: INSERT INTO crier.subscriptions (name,
# topics) VALUES ('q0', '{bench.event}').
# Environment: PGBENCH_CLIENTS (default 8); PGBENCH_FRESH=1 empties the tables before each run
# (crier.events and crier.deliveries, or public.bare), so that variants compare on equal tables;
# PGBENCH_NICE=19 runs pgbench and renices its backends (a machine others are using).
import subprocess, sys, time, re, os, statistics
U = os.environ.get('PGBENCH_SERVER', 'postgres://postgres@127.0.0.1:5432')
R, T = int(sys.argv[1]), sys.argv[2]
CLIENTS = os.environ.get('PGBENCH_CLIENTS', '8')
NICE = os.environ.get('PGBENCH_NICE')
vs = [v.split(':') for v in sys.argv[3:]]
tick = os.sysconf('SC_CLK_TCK')
res = {}
def ticks(pid):
    try:
        f = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
        return int(f[11]) + int(f[12])
    except Exception:
        return None
for r in range(R):
    for k in range(len(vs)):
        name, db, script = vs[(k + r) % len(vs)]
        if os.environ.get('PGBENCH_FRESH') == '1':
            tables = 'public.bare' if 'bare' in os.path.basename(script) else 'crier.events, crier.deliveries'
            subprocess.run(['psql', f'{U}/{db}', '-qc', f'TRUNCATE {tables}'], check=True)
        subprocess.run(['psql', f'{U}/postgres', '-qc', 'CHECKPOINT'], check=True)
        niced = ['nice', '-n', NICE] if NICE else []
        p = subprocess.Popen(niced + ['pgbench', '-n', '-M', 'prepared', '-c', CLIENTS, '-j', '2', '-T', T, '-f', script,
                              f'{U}/{db}'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        last = {}
        time.sleep(0.3)
        while p.poll() is None:
            out = subprocess.run(['psql', f'{U}/postgres', '-Atc',
                f"select pid from pg_stat_activity where datname = '{db}' and application_name = 'pgbench'"],
                capture_output=True, text=True).stdout.split()
            for pid in out:
                if NICE and pid not in last:
                    subprocess.run(['renice', '-n', NICE, '-p', pid], capture_output=True)
                t = ticks(pid)
                if t is not None: last[pid] = t
            time.sleep(0.1)
        text = p.stdout.read()
        m = re.search(r'number of transactions actually processed: (\d+)', text)
        tps = re.search(r'tps = ([\d.]+)', text)
        if not m:
            print(name, 'FAILED', text[-500:]); continue
        n = int(m.group(1))
        us = sum(last.values()) / tick * 1e6 / n
        res.setdefault(name, []).append((us, float(tps.group(1))))
        print(f'{r} {name:16} {us:7.1f} us/txn  {float(tps.group(1)):8.0f} tps', flush=True)
print('\nsummary: server CPU us per transaction, median (min-max); tps median (min-max)')
for name, xs in res.items():
    us = [x[0] for x in xs]; tp = [x[1] for x in xs]
    print(f'{name:16} {statistics.median(us):7.1f} ({min(us):.1f}-{max(us):.1f})   {statistics.median(tp):8.0f} ({min(tp):.0f}-{max(tp):.0f})')
