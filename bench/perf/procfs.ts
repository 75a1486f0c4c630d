// What the kernel says about a process: CPU time from /proc/<pid>/stat, resident memory from
// /proc/<pid>/status, and this process's open-files limit from /proc/self/limits. Linux only, as the issue asks.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Clock ticks per second of the utime/stime fields; 100 on every Linux this runs on, but asked, not assumed. */
export const CLOCK_TICKS = clockTicks();

/** User + system CPU time of `pid` so far, in microseconds (resolution: one clock tick, 10 ms). */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may itself hold spaces or ')': split after the last one.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 (utime) and 15 (stime) of proc(5), counted from 1; the slice starts at field 3.
  const ticks = Number(fields[14 - 3]) + Number(fields[15 - 3]);
  return (ticks * 1_000_000) / CLOCK_TICKS;
}

/**
 * CPU time of `pid` (or this process: 'self') and of every child it has reaped, in microseconds:
 * utime + stime + cutime + cstime. Short-lived children (one stdio server per MCP session) are gone
 * before anyone could read their own /proc entry; once reaped, their time is in their parent's.
 */
export function treeCpuMicros(pid: number | 'self'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14–17 of proc(5) (utime, stime, cutime, cstime), counted from 1; the slice starts at field 3.
  const ticks = [14, 15, 16, 17].reduce((sum, field) => sum + Number(fields[field - 3]), 0);
  return (ticks * 1_000_000) / CLOCK_TICKS;
}

/** Resident set size of `pid` in bytes. */
export function rssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/**
 * CPU time all processes of the machine have used so far (user, nice, system, irq, softirq, steal), in
 * microseconds: with our own processes' share subtracted, it tells whether something else was running.
 */
export function machineBusyMicros(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  const ticks = [user, nice, system, irq, softirq, steal].reduce<number>((sum, value) => sum + (value ?? 0), 0);
  return (ticks * 1_000_000) / CLOCK_TICKS;
}

/** The soft limit on open files of this process, which its children inherit; undefined if unlimited/unknown. */
export function openFilesLimit(): number | undefined {
  const match = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return match ? Number(match[1]) : undefined;
}

function clockTicks(): number {
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(value) && value > 0 ? value : 100;
  } catch {
    return 100;
  }
}
