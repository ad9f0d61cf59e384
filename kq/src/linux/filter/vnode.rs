//! EVFILT_VNODE (FreeBSD `filt_vfsvnode` and the VFS calls that feed it,
//! sys/kern/vfs_subr.c) through inotify, and the inotify watches that wake
//! EVFILT_READ/EVFILT_WRITE knotes on regular files.
//!
//! inotify watches paths, but `/proc/self/fd/N` names the file a
//! descriptor holds, so the watch is on that file (its inode): a rename or
//! unlink leaves it in place, as a knote stays on its vnode. One inotify
//! instance per kqueue; a watch descriptor maps to the descriptors whose
//! knotes use it (inotify gives one watch per file and instance).
//!
//! What FreeBSD reports, and the inotify event it comes from:
//!
//! | FreeBSD (hint of one VFS call)   | Linux (inotify)                                  |
//! |----------------------------------|--------------------------------------------------|
//! | write: NOTE_WRITE (+NOTE_EXTEND if the file grew) | IN_MODIFY, the size compared with the last one |
//! | setattr (chmod, chown, utimes, truncate): NOTE_ATTRIB | IN_ATTRIB (link count unchanged, or mode, owner or modification time changed); IN_MODIFY that shrank the file |
//! | link(): NOTE_LINK                | IN_ATTRIB with a higher link count               |
//! | remove(), rename() over it: NOTE_DELETE | IN_ATTRIB with a lower link count; IN_DELETE_SELF; for a directory, IN_DELETE or IN_MOVED_TO in its parent's watch leaving it no links |
//! | rename(): NOTE_RENAME            | IN_MOVE_SELF                                     |
//! | revoke, unmount: NOTE_REVOKE, EV_EOF | IN_UNMOUNT                                    |
//! | open(): NOTE_OPEN (FreeBSD 14)   | IN_OPEN (watched once a knote asks)              |
//! | close() of a descriptor that could not write / could: NOTE_CLOSE / NOTE_CLOSE_WRITE | IN_CLOSE_NOWRITE / IN_CLOSE_WRITE |
//! | read(): NOTE_READ                | IN_ACCESS (watched once a knote asks)            |
//! | directory entry created, removed, renamed: NOTE_WRITE (+NOTE_LINK for a subdirectory; +NOTE_EXTEND when moved to or from another directory) | IN_CREATE, IN_DELETE, IN_MOVED_FROM/TO on the directory (with IN_ISDIR; a move with no partner in the same read went elsewhere) |
//!
//! As in FreeBSD, a knote records a hint whole when any of its bits is
//! one it asked for (`kn_fflags |= hint`), and the notes accumulate until
//! delivered; EV_CLEAR then starts again from nothing.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use libc::c_int;

use crate::linux::abi::*;
use crate::linux::fd::Kind;
use crate::linux::filter::{FilterKind, FilterOps};
use crate::linux::knote::{Knote, KnoteRef, Table};
use crate::linux::os;
use crate::linux::queue::{Out, Token};

/// Everything a knote may need to hear about a watched file: its own
/// changes, its entries' (for a directory), and its closes (a close() of
/// our descriptor ends the knote: the watch must not outlive it).
const WATCH_MASK: u32 = libc::IN_MODIFY
    | libc::IN_ATTRIB
    | libc::IN_MOVE_SELF
    | libc::IN_DELETE_SELF
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_CLOSE_WRITE
    | libc::IN_CLOSE_NOWRITE;

/// FreeBSD 14's notes about opens and reads of the file. inotify reports
/// them (IN_OPEN, IN_ACCESS) on every open and every read(), which no other
/// knote wants: a watch asks for them only once a knote on it does
/// (`watch_opens_and_reads`). Closes (IN_CLOSE_*) are watched always.
const OPEN_OR_READ: u32 = NOTE_OPEN | NOTE_READ;

/// A queue's inotify instance and who uses each of its watches.
pub(crate) struct Inotify {
    fd: OwnedFd,
    /// Watch descriptor -> the descriptor numbers whose knotes use it (a
    /// number appears once per entry: its READ/WRITE entry, its vnode).
    users: HashMap<c_int, Vec<RawFd>>,
}

impl Inotify {
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

pub(crate) struct Vnode {
    pub(crate) knote: Knote,
    dev: u64,
    ino: u64,
    wd: c_int,
    /// A directory's: the watch of its parent (-1: none). inotify reports
    /// an rmdir() to the directory itself only once its last descriptor
    /// closes; its parent hears of it at once (IN_DELETE).
    parent_wd: c_int,
    /// Size and link count at the last look, to tell NOTE_EXTEND,
    /// NOTE_LINK and NOTE_DELETE apart.
    size: i64,
    nlink: u64,
    /// Mode, owner and modification time at the last look: inotify merges
    /// a chmod() with a link() that follows it (both IN_ATTRIB), so a link
    /// count change must not hide an attribute change.
    attrs: Attrs,
    /// Notes recorded and not yet delivered (FreeBSD's `kn_fflags`).
    fired: u32,
    /// NOTE_REVOKE happened: EV_EOF from now on.
    revoked: bool,
}

/// What a setattr (chmod, chown, utimes) changes that a read, a write or
/// a link does not: the mode, the owner, and the modification time (which
/// writes change too: it is compared only when no write follows in the
/// events read). Not the access time, which reads change.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Attrs {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
}

impl Attrs {
    fn of(st: &libc::stat) -> Attrs {
        Attrs {
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: (st.st_mtime, st.st_mtime_nsec),
        }
    }

    /// Whether a setattr happened between `self` and `now`; `mtime`: the
    /// modification time counts.
    fn changed(&self, now: &Attrs, mtime: bool) -> bool {
        (self.mode, self.uid, self.gid) != (now.mode, now.uid, now.gid)
            || (mtime && self.mtime != now.mtime)
    }
}

impl Vnode {
    /// Whether `st` describes the file this knote was added for.
    pub(crate) fn is(&self, st: &libc::stat) -> bool {
        (self.dev, self.ino) == (st.st_dev, st.st_ino)
    }

    /// Records one VFS call's hint, if the knote asked for any of it.
    fn record(&mut self, hint: u32) {
        if self.knote.sfflags & hint != 0 {
            self.fired |= hint;
        }
        if hint & NOTE_REVOKE != 0 {
            self.revoked = true;
        }
    }
}

/// One event read from inotify.
struct InotifyEvent {
    wd: c_int,
    mask: u32,
    cookie: u32,
    /// About an entry of a watched directory (it has a name), not the
    /// watched file itself.
    entry: bool,
}

/// The events waiting in an inotify descriptor.
fn read_events(ifd: RawFd) -> Vec<InotifyEvent> {
    #[repr(C, align(8))]
    struct Buf([u8; 4096]);
    let mut buf = Buf([0; 4096]);
    let header = std::mem::size_of::<libc::inotify_event>();
    let mut events = Vec::new();
    loop {
        let n = os::read_into(ifd, &mut buf.0);
        if n == 0 {
            return events;
        }
        let mut at = 0;
        while at + header <= n {
            // SAFETY: the kernel wrote a whole inotify_event header at `at`
            // (events are packed, each header followed by `len` bytes of
            // name); read_unaligned copies it out.
            let ev: libc::inotify_event =
                unsafe { std::ptr::read_unaligned(buf.0.as_ptr().add(at).cast()) };
            events.push(InotifyEvent {
                wd: ev.wd,
                mask: ev.mask,
                cookie: ev.cookie,
                entry: ev.len > 0,
            });
            at += header + ev.len as usize;
        }
    }
}

/// The hint FreeBSD's VFS would give a directory for an event about one of
/// its entries (`paired`: a move whose other half is in the same
/// directory).
fn entry_hint(ev: &InotifyEvent, paired: bool) -> u32 {
    let dir = ev.mask & libc::IN_ISDIR != 0;
    let link = if dir { NOTE_LINK } else { 0 };
    if ev.mask & (libc::IN_CREATE | libc::IN_DELETE) != 0 {
        NOTE_WRITE | link
    } else if ev.mask & (libc::IN_MOVED_FROM | libc::IN_MOVED_TO) != 0 {
        if paired {
            NOTE_WRITE
        } else {
            NOTE_WRITE | NOTE_EXTEND | link
        }
    } else {
        0 // an entry was written, opened, closed: not the directory's business
    }
}

/// EVFILT_VNODE, `f_isfd`: an inotify watch per knote.
pub(crate) static OPS: FilterOps = FilterOps {
    check_ident: |t, change| t.descriptor_of(change).map(|(_, st)| Some(st)),
    attach: |t, r, knote, _, st| t.attach_vnode(r.ident as RawFd, knote, st),
    // Not FreeBSD's (its vnode filter has no f_touch): a modification that
    // asks for NOTE_OPEN or NOTE_READ widens the inotify watch.
    touch: Some(|t, r, k, change| {
        k.sfflags = change.fflags;
        k.sdata = change.data as i64;
        t.watch_opens_and_reads(r.ident as RawFd, k.sfflags)
    }),
    catch_up: |t, _| t.catch_up_inotify(),
    detach: |t, r| t.delete_vnode(r.ident as RawFd),
    arm: |t, r, _| {
        t.arm_vnode(r.ident as RawFd);
        Ok(())
    },
    deliver: |t, r, out| t.deliver_vnode(r.ident as RawFd, out),
};

impl Table {
    /// Watches the file `fd` names; returns the watch descriptor. EINVAL
    /// for what has no file to watch (a pipe, an eventfd: no path).
    pub(crate) fn watch(&mut self, fd: RawFd) -> io::Result<c_int> {
        if self.inotify.is_none() {
            let ino = os::inotify()?;
            let ifd = ino.as_raw_fd();
            os::epoll_ctl(
                self.epfd,
                libc::EPOLL_CTL_ADD,
                ifd,
                libc::EPOLLIN as u32,
                Token::Inotify.encode(),
            )?;
            self.inotify = Some(Inotify {
                fd: ino,
                users: HashMap::new(),
            });
        }
        let ino = self.inotify.as_mut().expect("made above");
        let path = CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a number");
        let wd = os::inotify_add_watch(ino.fd(), &path, WATCH_MASK).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOENT) {
                os::err(libc::EINVAL)
            } else {
                e
            }
        })?;
        ino.users.entry(wd).or_default().push(fd);
        Ok(wd)
    }

    /// `fd` no longer uses watch `wd`; the last user removes it.
    pub(crate) fn unwatch(&mut self, fd: RawFd, wd: c_int) {
        let Some(ino) = self.inotify.as_mut() else {
            return;
        };
        let Some(users) = ino.users.get_mut(&wd) else {
            return;
        };
        if let Some(at) = users.iter().position(|&u| u == fd) {
            users.swap_remove(at);
        }
        if users.is_empty() {
            ino.users.remove(&wd);
            os::inotify_rm_watch(ino.fd(), wd);
        }
    }

    /// `filt_vfsattach`: an inotify watch on the file the descriptor holds.
    fn attach_vnode(&mut self, fd: RawFd, knote: Knote, st: Option<&libc::stat>) -> io::Result<()> {
        let Some(st) = st else {
            return Err(os::err(libc::EBADF)); // check_ident found no descriptor
        };
        // Files, directories, links and devices are vnodes; sockets, pipes
        // and FIFOs are not (FreeBSD's socket and pipe filters refuse it),
        // nor is what has no type (eventfds, a kqueue).
        let vnode_types = [
            libc::S_IFREG,
            libc::S_IFDIR,
            libc::S_IFLNK,
            libc::S_IFCHR,
            libc::S_IFBLK,
        ];
        if !vnode_types.contains(&(st.st_mode & libc::S_IFMT)) {
            return Err(os::err(libc::EINVAL));
        }
        let wd = self.watch(fd)?;
        let sfflags = knote.sfflags;
        self.vnodes.insert(
            fd,
            Vnode {
                knote,
                dev: st.st_dev,
                ino: st.st_ino,
                wd,
                size: st.st_size,
                nlink: st.st_nlink,
                attrs: Attrs::of(st),
                fired: 0,
                revoked: false,
                parent_wd: -1,
            },
        );
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            self.watch_parent(fd);
        }
        if let Err(e) = self.watch_opens_and_reads(fd, sfflags) {
            self.delete_vnode(fd);
            return Err(e);
        }
        Ok(())
    }

    /// Watches the parent of the directory `fd` for its entries' removals
    /// and moves (added to what the parent's watch has, so its own users
    /// keep theirs), so an rmdir() or a rename() over the directory is
    /// NOTE_DELETE at once, as on FreeBSD. Without it (the parent cannot be
    /// watched: `/`, a directory of a file system inotify does not watch)
    /// the removal is heard when the last descriptor closes.
    fn watch_parent(&mut self, fd: RawFd) {
        let Some(ino) = self.inotify.as_mut() else {
            return;
        };
        let path = CString::new(format!("/proc/self/fd/{fd}/..")).expect("no NUL in a number");
        let mask = libc::IN_DELETE | libc::IN_MOVED_TO | libc::IN_ONLYDIR | libc::IN_MASK_ADD;
        let Ok(wd) = os::inotify_add_watch(ino.fd(), &path, mask) else {
            return;
        };
        let Some(v) = self.vnodes.get_mut(&fd) else {
            return;
        };
        if wd == v.wd {
            return; // the root directory is its own parent
        }
        ino.users.entry(wd).or_default().push(fd);
        v.parent_wd = wd;
    }

    /// Widens the watch of a vnode knote that asks for NOTE_OPEN or
    /// NOTE_READ to IN_OPEN and IN_ACCESS (added to what the watch has, so
    /// its other users keep theirs; it stays wide while the watch lives).
    fn watch_opens_and_reads(&mut self, fd: RawFd, sfflags: u32) -> io::Result<()> {
        if sfflags & OPEN_OR_READ == 0 {
            return Ok(());
        }
        let Some(ino) = self.inotify.as_ref() else {
            return Ok(());
        };
        let path = CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a number");
        let mask = libc::IN_OPEN | libc::IN_ACCESS | libc::IN_MASK_ADD;
        os::inotify_add_watch(ino.fd(), &path, mask).map(drop)
    }

    /// Notes recorded while the knote was disabled (or before a change) are
    /// reported as soon as it is enabled: what was recorded is not reset by
    /// a modification (FreeBSD).
    fn arm_vnode(&mut self, fd: RawFd) {
        if self.vnodes.get(&fd).is_some_and(|v| v.fired != 0) {
            self.queue(KnoteRef::new(FilterKind::Vnode, fd as usize));
        }
    }

    pub(crate) fn delete_vnode(&mut self, fd: RawFd) {
        self.unqueue(KnoteRef::new(FilterKind::Vnode, fd as usize));
        if let Some(v) = self.vnodes.remove(&fd) {
            if v.wd >= 0 {
                self.unwatch(fd, v.wd);
            }
            if v.parent_wd >= 0 {
                self.unwatch(fd, v.parent_wd);
            }
        }
    }

    /// Forgets a closed number's vnode knote.
    pub(crate) fn drop_vnode(&mut self, fd: RawFd) {
        self.delete_vnode(fd);
    }

    pub(crate) fn deliver_vnode(&mut self, fd: RawFd, out: &mut Out) {
        let Some(v) = self.vnodes.get(&fd) else {
            return;
        };
        if v.knote.disabled || v.fired == 0 {
            return;
        }
        // Never for a number closed since (it may name another file now).
        if !os::fstat(fd).is_ok_and(|st| v.is(&st)) {
            self.drop_vnode(fd);
            return;
        }
        let r = KnoteRef::new(FilterKind::Vnode, fd as usize);
        if !out.room() {
            self.queue(r);
            return;
        }
        let v = self.vnodes.get_mut(&fd).expect("looked up above");
        let k = v.knote;
        let eof = if v.revoked { EV_EOF } else { 0 };
        out.push(k.event(fd as usize, FilterKind::Vnode, eof, v.fired, 0));
        let level = k.flags & EV_CLEAR == 0;
        if !level {
            v.fired = 0;
        }
        self.after_delivery(r, k.flags, level);
    }

    /// The queue's inotify descriptor is readable: turns its events into
    /// notes for vnode knotes and re-evaluations of regular-file knotes,
    /// and delivers what they make true (room permitting).
    pub(crate) fn read_inotify(&mut self, out: &mut Out) {
        let woken = self.take_inotify();
        for r in woken {
            if !out.room() {
                break;
            }
            // Just queued by this read (not delivered in this call yet).
            self.unqueue(r);
            match r.filter {
                FilterKind::Vnode => self.deliver_vnode(r.ident as RawFd, out),
                _ => self.deliver_queued_fd(r.filter, r.ident as RawFd, out),
            }
        }
    }

    /// Before a change replaces a vnode knote's notes: the inotify events
    /// not read yet are recorded with the notes in force when they
    /// happened (FreeBSD records a hint in every knote at the VFS call).
    /// What they make true waits in the pending queue.
    fn catch_up_inotify(&mut self) {
        self.take_inotify();
    }

    /// Reads what inotify has: records its events as notes of vnode knotes
    /// and queues the knotes they wake (vnode and regular-file ones), which
    /// it returns.
    fn take_inotify(&mut self) -> Vec<KnoteRef> {
        let Some(ifd) = self.inotify.as_ref().map(|i| i.fd()) else {
            return Vec::new();
        };
        let events = read_events(ifd);
        let mut woken: Vec<KnoteRef> = Vec::new();
        for (i, ev) in events.iter().enumerate() {
            if ev.mask & libc::IN_Q_OVERFLOW != 0 {
                self.recheck_everything(&mut woken);
                continue;
            }
            let users = match self.inotify.as_ref().and_then(|i| i.users.get(&ev.wd)) {
                Some(users) => users.clone(),
                None => continue, // a watch we removed
            };
            let paired = ev.cookie != 0
                && events
                    .iter()
                    .enumerate()
                    .any(|(j, o)| j != i && o.wd == ev.wd && o.cookie == ev.cookie);
            // A write after this event changes the modification time too.
            let written_later = events[i + 1..]
                .iter()
                .any(|o| o.wd == ev.wd && !o.entry && o.mask & libc::IN_MODIFY != 0);
            for fd in users {
                self.inotify_event_for(fd, ev, paired, written_later, &mut woken);
            }
            if ev.mask & libc::IN_IGNORED != 0 {
                // The watch is gone (the file was deleted and let go of).
                self.forget_watch(ev.wd);
            }
        }
        woken
    }

    /// One inotify event, for the knotes of `fd` that use its watch.
    fn inotify_event_for(
        &mut self,
        fd: RawFd,
        ev: &InotifyEvent,
        paired: bool,
        written_later: bool,
        woken: &mut Vec<KnoteRef>,
    ) {
        let st = os::fstat(fd);
        let file_entry = self
            .fds
            .get(fd as usize)
            .is_some_and(|e| e.kind == Kind::File && e.wd == ev.wd);
        if file_entry {
            if st.as_ref().is_ok_and(|st| self.fds[fd as usize].is(st)) {
                // FreeBSD runs a file's read and write filters on every
                // change of the file.
                // (Not on an open or a read, which change nothing: those
                // reach a watch only for a vnode knote that asked.)
                if !ev.entry && ev.mask & !(libc::IN_OPEN | libc::IN_ACCESS) != 0 {
                    self.wake(KnoteRef::new(FilterKind::Read, fd as usize), woken);
                    self.wake(KnoteRef::new(FilterKind::Write, fd as usize), woken);
                }
            } else {
                self.drop_fd(fd); // closed since
            }
        }
        if self.vnodes.get(&fd).is_some_and(|v| v.parent_wd == ev.wd) {
            self.parent_event_for(fd, ev, st.ok(), woken);
            return;
        }
        let Some(v) = self.vnodes.get_mut(&fd).filter(|v| v.wd == ev.wd) else {
            return;
        };
        let st = match st {
            Ok(st) if v.is(&st) => st,
            _ => {
                self.drop_vnode(fd); // closed since
                return;
            }
        };
        let before = v.fired;
        if ev.entry {
            v.record(entry_hint(ev, paired));
        } else {
            // The size and the link count are compared with those seen at
            // the last event of the same kind: events are read after the
            // fact, and a later change (an append after a chmod) must not
            // be taken for an earlier one's.
            if ev.mask & libc::IN_MODIFY != 0 {
                v.record(if st.st_size > v.size {
                    NOTE_WRITE | NOTE_EXTEND
                } else if st.st_size < v.size {
                    NOTE_ATTRIB // only a truncation shrinks a file
                } else {
                    NOTE_WRITE
                });
                v.size = st.st_size;
                v.attrs.mtime = Attrs::of(&st).mtime;
            }
            if ev.mask & libc::IN_ATTRIB != 0 {
                let dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                let now = Attrs::of(&st);
                // A directory's link count changes with its subdirectories,
                // which its entry events report.
                if dir || st.st_nlink == v.nlink {
                    v.record(NOTE_ATTRIB);
                } else {
                    v.record(if st.st_nlink > v.nlink {
                        NOTE_LINK
                    } else {
                        NOTE_DELETE
                    });
                    // inotify merges identical events: a chmod() before the
                    // link() came as this one IN_ATTRIB.
                    if v.attrs.changed(&now, !written_later) {
                        v.record(NOTE_ATTRIB);
                    }
                }
                v.nlink = st.st_nlink;
                v.attrs = now;
            }
            if ev.mask & libc::IN_MOVE_SELF != 0 {
                v.record(NOTE_RENAME);
            }
            if ev.mask & libc::IN_DELETE_SELF != 0 {
                v.record(NOTE_DELETE);
            }
            if ev.mask & libc::IN_UNMOUNT != 0 {
                v.record(NOTE_REVOKE);
            }
            // FreeBSD 14's VOP_OPEN, VOP_CLOSE (by whether the descriptor
            // could write) and VOP_READ hints.
            if ev.mask & libc::IN_OPEN != 0 {
                v.record(NOTE_OPEN);
            }
            if ev.mask & libc::IN_CLOSE_NOWRITE != 0 {
                v.record(NOTE_CLOSE);
            }
            if ev.mask & libc::IN_CLOSE_WRITE != 0 {
                v.record(NOTE_CLOSE_WRITE);
            }
            if ev.mask & libc::IN_ACCESS != 0 {
                v.record(NOTE_READ);
            }
        }
        if v.fired != before || v.revoked {
            self.wake(KnoteRef::new(FilterKind::Vnode, fd as usize), woken);
        }
    }

    /// An event of a watched directory's parent: an entry removed or
    /// replaced. Whether it was this directory, the directory itself says:
    /// a removed one has no links left (its name may have changed since
    /// the knote was added; the number still holds the directory).
    fn parent_event_for(
        &mut self,
        fd: RawFd,
        ev: &InotifyEvent,
        st: Option<libc::stat>,
        woken: &mut Vec<KnoteRef>,
    ) {
        if ev.mask & (libc::IN_DELETE | libc::IN_MOVED_TO) == 0 || ev.mask & libc::IN_ISDIR == 0 {
            return;
        }
        let Some(v) = self.vnodes.get_mut(&fd) else {
            return;
        };
        match st {
            Some(st) if v.is(&st) => {
                if st.st_nlink != 0 || v.nlink == 0 {
                    return; // another entry, or this one's removal was told
                }
                v.nlink = 0;
                let before = v.fired;
                v.record(NOTE_DELETE);
                if v.fired != before {
                    self.wake(KnoteRef::new(FilterKind::Vnode, fd as usize), woken);
                }
            }
            _ => self.drop_vnode(fd), // closed since
        }
    }

    /// Queues a knote woken by inotify, remembering it if this queued it.
    fn wake(&mut self, r: KnoteRef, woken: &mut Vec<KnoteRef>) {
        if self.knote_mut(r).is_some_and(|k| !k.disabled && !k.queued) {
            self.queue(r);
            woken.push(r);
        }
    }

    /// inotify lost events (its queue overflowed): every knote it feeds is
    /// looked at again, vnode knotes by comparing size and link count.
    fn recheck_everything(&mut self, woken: &mut Vec<KnoteRef>) {
        let files: Vec<RawFd> = (0..self.fds.len() as RawFd)
            .filter(|&fd| self.fds[fd as usize].kind == Kind::File)
            .collect();
        for fd in files {
            self.wake(KnoteRef::new(FilterKind::Read, fd as usize), woken);
            self.wake(KnoteRef::new(FilterKind::Write, fd as usize), woken);
        }
        let vnodes: Vec<RawFd> = self.vnodes.keys().copied().collect();
        for fd in vnodes {
            let Ok(st) = os::fstat(fd) else { continue };
            let Some(v) = self.vnodes.get_mut(&fd).filter(|v| v.is(&st)) else {
                continue;
            };
            if st.st_size != v.size {
                v.record(NOTE_WRITE | if st.st_size > v.size { NOTE_EXTEND } else { 0 });
            }
            if st.st_nlink != v.nlink {
                v.record(if st.st_nlink > v.nlink {
                    NOTE_LINK
                } else {
                    NOTE_DELETE
                });
            }
            v.size = st.st_size;
            v.nlink = st.st_nlink;
            if v.fired != 0 {
                self.wake(KnoteRef::new(FilterKind::Vnode, fd as usize), woken);
            }
        }
    }

    /// A watch inotify dropped by itself: its users no longer have one.
    fn forget_watch(&mut self, wd: c_int) {
        let Some(users) = self.inotify.as_mut().and_then(|i| i.users.remove(&wd)) else {
            return;
        };
        for fd in users {
            if let Some(e) = self.fds.get_mut(fd as usize).filter(|e| e.wd == wd) {
                e.wd = -1;
            }
            if let Some(v) = self.vnodes.get_mut(&fd).filter(|v| v.wd == wd) {
                v.wd = -1;
            }
            if let Some(v) = self.vnodes.get_mut(&fd).filter(|v| v.parent_wd == wd) {
                v.parent_wd = -1;
            }
        }
    }
}
