/**
 * Exiting when the namespace we serve goes away, as pasta does when attached to an existing namespace.
 *
 * A namespace file in an ordinary directory (/run/netns/NAME, a bind mount) is watched with inotify for its
 * deletion. procfs entries (/proc/PID/ns/net) send no inotify events, so there a 1 s timer checks that the path
 * can still be opened (EACCES counts as present: the process exists, we just may not look).
 */
import { basename, dirname } from "node:path";
import { EpollType } from "../epoll_ref.ts";
import type { EventLoop } from "../loop.ts";
import { CLOCK_MONOTONIC, O_DIRECTORY, O_PATH, EPOLLIN, IN_CLOEXEC, IN_DELETE, IN_MOVED_FROM, IN_NONBLOCK, O_CLOEXEC, O_RDONLY, TFD_CLOEXEC, TFD_NONBLOCK } from "../syscalls/constants.ts";
import { Errno } from "../syscalls/errno.ts";
import { close, open, read, tryOpenAt } from "../syscalls/io.ts";
import { Mem } from "../syscalls/mem.ts";
import { inotifyAddWatch, inotifyInit } from "../syscalls/process.ts";
import { readCounter, timerfdCreate, timerfdSet } from "../syscalls/timer.ts";
import { log } from "../log.ts";

const CHECK_INTERVAL_MS = 1000;
/** struct inotify_event: wd, mask, cookie, len, then len bytes of NUL-padded name. */
const EVENT_HEADER = 16;

/**
 * True while a namespace file still exists in the directory open at dirFd (or exists but may not be opened by
 * us). Relative to the directory, so that it still works once the process has no filesystem of its own.
 */
export function namespacePresent(dirFd: number, name: string): boolean {
  const fd = tryOpenAt(dirFd, name, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    close(fd);
    return true;
  }
  return fd === -Errno.EACCES;
}

/** Calls onGone once the namespace file at path is removed (or its process is gone). */
export function watchNamespace(loop: EventLoop, path: string, onGone: () => void): void {
  if (path.startsWith("/proc/")) {
    watchByTimer(loop, path, onGone);
    return;
  }
  let fd: number;
  try {
    fd = inotifyInit(IN_NONBLOCK | IN_CLOEXEC);
    inotifyAddWatch(fd, dirname(path), IN_DELETE | IN_MOVED_FROM);
  } catch (e) {
    log.debug(`inotify on ${dirname(path)} failed (${e instanceof Error ? e.message : e}): checking every second`);
    watchByTimer(loop, path, onGone);
    return;
  }
  const name = basename(path);
  const buf = new Mem(4096);
  loop.on(EpollType.NSQUIT_INOTIFY, (ifd) => {
    for (;;) {
      const n = read(ifd, buf.addr, buf.bytes.length);
      if (n <= 0) return;
      for (let off = 0; off + EVENT_HEADER <= n; ) {
        const len = buf.view.getUint32(off + 12, true);
        const raw = buf.bytes.subarray(off + EVENT_HEADER, Math.min(n, off + EVENT_HEADER + len));
        const end = raw.indexOf(0);
        if (new TextDecoder().decode(end < 0 ? raw : raw.subarray(0, end)) === name) {
          log.info(`namespace ${path} is gone: exiting`);
          onGone();
          return;
        }
        off += EVENT_HEADER + len;
      }
    }
  });
  loop.add(EpollType.NSQUIT_INOTIFY, fd, 0, EPOLLIN);
}

function watchByTimer(loop: EventLoop, path: string, onGone: () => void): void {
  const dirFd = open(dirname(path), O_PATH | O_DIRECTORY | O_CLOEXEC);
  const name = basename(path);
  const tfd = timerfdCreate(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  timerfdSet(tfd, CHECK_INTERVAL_MS, CHECK_INTERVAL_MS);
  loop.on(EpollType.NSQUIT_TIMER, (fd) => {
    readCounter(fd);
    if (!namespacePresent(dirFd, name)) {
      log.info(`namespace ${path} is gone: exiting`);
      onGone();
    }
  });
  loop.add(EpollType.NSQUIT_TIMER, tfd, 0, EPOLLIN);
}
