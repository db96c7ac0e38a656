// Keeps the browser's processes at this process's CPU priority. Chromium sets its own
// (renderers 0, the GPU process -8 where it may, e.g. as root), which would let a test or
// benchmark started with `nice` take the CPU from other work, and would time the page
// at another priority than what it is compared with. Linux only (/proc); elsewhere a
// no-op.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** PIDs of every descendant of `root` (from /proc/PID/stat's parent field). */
function descendants(root) {
  const parents = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(Number(name), ppid);
    } catch {
      // the process ended meanwhile
    }
  }
  const found = [];
  let frontier = [root];
  while (frontier.length) {
    const next = [];
    for (const [pid, ppid] of parents) if (frontier.includes(ppid)) next.push(pid);
    found.push(...next);
    frontier = next;
  }
  return found;
}

/**
 * Every `intervalMs`, sets the priority of this process's descendants to its own.
 *
 * @returns {() => void} Stops it.
 */
export function holdChildrenPriority(intervalMs = 500) {
  if (!existsSync('/proc/self/stat')) return () => {};
  const ours = getPriority();
  const apply = () => {
    for (const pid of descendants(process.pid)) {
      try {
        if (getPriority(pid) !== ours) setPriority(pid, ours);
      } catch {
        // gone, or not ours to change
      }
    }
  };
  apply();
  const timer = setInterval(apply, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
