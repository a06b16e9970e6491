//! The poll set for the Kotlin poller (`NativeBridge.pollSet*`): one JVM
//! thread waits for the events of every session (see
//! `crate::ffi::poll_set`). A set handle is a `jlong` pointing to a boxed
//! `Arc<PollSet>`; the Kotlin side makes one per process and never frees it.

use std::sync::Arc;

use ::jni::objects::{JClass, JLongArray};
use ::jni::sys::{jint, jlong};
use ::jni::JNIEnv;

use super::boundary::guard;
use super::handle::{self, Handle};
use crate::error::Error;
use crate::ffi::poll_set::PollSet;

/// Most tokens one wait reports.
const MAX_TOKENS: usize = 1024;

/// Borrows the set behind `raw`.
///
/// # Safety
/// `raw` is 0 or came from `pollSetNew` and has not been freed.
pub(crate) unsafe fn set<'a>(raw: jlong) -> Result<&'a Arc<PollSet>, Error> {
    if raw == 0 {
        return Err(Error::NullArgument("set"));
    }
    // SAFETY: non-null, and live by this function's contract.
    Ok(unsafe { &*(raw as *const Arc<PollSet>) })
}

/// A new, empty poll set.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_pollSetNew<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
) -> jlong {
    guard(&mut env, 0, |_| {
        Ok(Box::into_raw(Box::new(Arc::new(PollSet::new()?))) as jlong)
    })
}

/// Releases a set (0 is ignored): once, with no call on it in flight.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_pollSetFree<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    set: jlong,
) {
    guard(&mut env, (), |_| {
        if set != 0 {
            // SAFETY: a pointer from pollSetNew, freed once by its owner.
            drop(unsafe { Box::from_raw(set as *mut Arc<PollSet>) });
        }
        Ok(())
    })
}

/// Adds the client behind `handle`, armed, reported as `token`.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_pollSetAdd<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    set: jlong,
    handle: jlong,
    token: jlong,
) {
    guard(&mut env, (), |_| {
        // SAFETY: the set lives for the process; the in-flight counter
        // keeps the client handle alive for this call.
        let (set, handle) = unsafe { (self::set(set)?, Handle::from_raw(handle)?) };
        let token = u64::try_from(token)
            .map_err(|_| Error::InvalidArgument(format!("token {token} is negative")))?;
        Ok(set.add(&handle.client, token)?)
    })
}

/// Arms the client again once its events were drained.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_pollSetRearm<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    set: jlong,
    handle: jlong,
) {
    guard(&mut env, (), |_| {
        // SAFETY: as in pollSetAdd.
        let (set, handle) = unsafe { (self::set(set)?, Handle::from_raw(handle)?) };
        Ok(set.rearm(&handle.client)?)
    })
}

/// Asks for a room notice (token | 2^63) once the client's outgoing queue
/// has room again.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_pollSetWatchRoom<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    set: jlong,
    handle: jlong,
) {
    guard(&mut env, (), |_| {
        // SAFETY: as in pollSetAdd.
        let (set, handle) = unsafe { (self::set(set)?, Handle::from_raw(handle)?) };
        Ok(set.watch_room(&handle.client)?)
    })
}

/// Removes the client; on return no wait uses it, so it may be freed.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_pollSetRemove<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    set: jlong,
    handle: jlong,
) {
    guard(&mut env, (), |_| {
        // SAFETY: as in pollSetAdd.
        let (set, handle) = unsafe { (self::set(set)?, Handle::from_raw(handle)?) };
        Ok(set.remove(&handle.client)?)
    })
}

/// Waits up to `timeoutMs` (-1: forever) for armed clients with events
/// pending, writes their tokens to `tokens` and disarms them. Returns how
/// many; 0 on a timeout or after `pollSetWake`.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_pollSetWait<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    set: jlong,
    timeout_ms: jint,
    tokens: JLongArray<'l>,
) -> jint {
    guard(&mut env, 0, |env| {
        // SAFETY: the set lives for the process.
        let set = unsafe { self::set(set)? };
        let timeout = handle::timeout(timeout_ms)?;
        let capacity = usize::try_from(env.get_array_length(&tokens)?)
            .unwrap_or(0)
            .min(MAX_TOKENS);
        let mut ready = [0u64; MAX_TOKENS];
        let count = set.wait(timeout, &mut ready[..capacity])?.unwrap_or(0);
        let as_longs: Vec<jlong> = ready[..count].iter().map(|&t| t as jlong).collect();
        env.set_long_array_region(&tokens, 0, &as_longs)?;
        Ok(count as jint)
    })
}

/// Makes the current (or next) wait return.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_pollSetWake<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    set: jlong,
) {
    guard(&mut env, (), |_| {
        // SAFETY: the set lives for the process.
        let set = unsafe { self::set(set)? };
        set.wake();
        Ok(())
    })
}
