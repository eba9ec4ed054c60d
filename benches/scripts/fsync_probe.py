# Probe (docs/benchmarks-sector.md, "Probes"): per-flush fdatasync cost of
# sequential 4 KiB writes into never-written space of a sparse, a fallocated and a zero-written
# file. Run: python3 benches/scripts/fsync_probe.py (writes 256 MiB files in $PROBE_DIR,
# default the current directory: put it on the file system you measure).
import os, time, sys
SIZE=256<<20
DIR=os.environ.get('PROBE_DIR', '.')
def prep(path, mode):
    fd=os.open(path, os.O_RDWR|os.O_CREAT|os.O_TRUNC)
    os.ftruncate(fd, SIZE)
    if mode=='falloc':
        os.posix_fallocate(fd,0,SIZE)
    elif mode=='zero':
        z=b'\0'*(1<<20)
        for off in range(0,SIZE,1<<20): os.pwrite(fd,z,off)
    os.fsync(fd)
    return fd
def run(mode, n=400, batch=1):
    fd=prep(os.path.join(DIR, f'probe_{mode}.dat'), mode)
    buf=os.urandom(4096)
    t=time.perf_counter(); off=0
    for i in range(n):
        for j in range(batch):
            os.pwrite(fd,buf,off); off+=4096
        os.fdatasync(fd)
    dt=(time.perf_counter()-t)/n
    os.close(fd); os.unlink(os.path.join(DIR, f'probe_{mode}.dat'))
    return dt*1e3
for batch in (1,16):
  for mode in ('sparse','falloc','zero','sparse','falloc','zero'):
    print(batch, mode, '%.3f ms per flush (sequential append into fresh space)'%run(mode,batch=batch))
