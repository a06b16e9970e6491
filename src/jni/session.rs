//! What the Kotlin bridges of the Socket.IO and SSE clients share: the
//! handle (a boxed client, freed once by Kotlin's in-flight counter), and
//! the exports every kind of session has, written once by
//! [`session_exports!`]: `free`, `close`, `pause`, `resume`,
//! `networkChanged`, `reconnect`, `setHeader` and the poll-set calls.

use ::jni::sys::jlong;
use ::jni::JNIEnv;

use super::boundary::{guard, Failure};
use crate::client::SseClient;
use crate::error::Error;
use crate::socketio::SocketIoClient;

/// A client kind that Kotlin reaches through a bridge object of its own
/// (each also has `session()`, the `Client` underneath, for lifecycle
/// calls and the poll set).
pub(crate) trait BridgedClient: Send + Sync + 'static {
    /// Ends the client as its kind does (Socket.IO leaves its namespaces).
    fn close(&self) -> Result<(), Error>;
    /// Sets a header of the next requests, with the kind's own checks.
    fn set_header(&self, name: &str, value: Option<&str>) -> Result<(), Error>;
}

impl BridgedClient for SocketIoClient {
    fn close(&self) -> Result<(), Error> {
        SocketIoClient::close(self)
    }
    fn set_header(&self, name: &str, value: Option<&str>) -> Result<(), Error> {
        SocketIoClient::set_header(self, name, value)
    }
}

impl BridgedClient for SseClient {
    fn close(&self) -> Result<(), Error> {
        SseClient::close(self)
    }
    fn set_header(&self, name: &str, value: Option<&str>) -> Result<(), Error> {
        SseClient::set_header(self, name, value)
    }
}

/// Boxes a new client for Kotlin; released by the bridge's `free`.
pub(crate) fn into_handle<C: BridgedClient>(client: C) -> jlong {
    Box::into_raw(Box::new(client)) as jlong
}

/// Borrows the client behind `raw`.
///
/// # Safety
/// `raw` is 0 or came from [`into_handle`] with this `C` and has not been
/// freed, and is not freed while the reference is used (Kotlin's
/// in-flight counter).
pub(crate) unsafe fn borrow<'a, C: BridgedClient>(raw: jlong) -> Result<&'a C, Error> {
    if raw == 0 {
        return Err(Error::NullArgument("handle"));
    }
    // SAFETY: non-null, and live for the call by this function's contract.
    Ok(unsafe { &*(raw as *const C) })
}

/// Drops the client behind `raw` (0 is ignored).
///
/// # Safety
/// As [`borrow`], and freed only once, with no other call in flight.
pub(crate) unsafe fn free<C: BridgedClient>(raw: jlong) {
    if raw != 0 {
        // SAFETY: a pointer from `into_handle`, freed once (the contract).
        drop(unsafe { Box::from_raw(raw as *mut C) });
    }
}

/// Runs `f` on the client behind `handle`, throwing its error (Kotlin then
/// never sees `fallback`).
pub(crate) fn on<C: BridgedClient, R>(
    env: &mut JNIEnv<'_>,
    handle: jlong,
    fallback: R,
    f: impl FnOnce(&mut JNIEnv<'_>, &C) -> Result<R, Failure>,
) -> R {
    guard(env, fallback, |env| {
        // SAFETY: the in-flight counter keeps the handle alive for this call.
        let client = unsafe { borrow::<C>(handle)? };
        f(env, client)
    })
}

/// A poll-set token from Kotlin (tokens are the poller's, never negative).
pub(crate) fn token(token: jlong) -> Result<u64, Error> {
    u64::try_from(token).map_err(|_| Error::InvalidArgument(format!("token {token} is negative")))
}

/// The exports every bridged kind shares, for `dev.tether.internal.$bridge`
/// over the client type `$client`, in a module `$module`.
macro_rules! session_exports {
    ($module:ident, $bridge:literal, $client:ty) => {
        mod $module {
            use ::jni::objects::{JClass, JString};
            use ::jni::sys::{jboolean, jlong, JNI_FALSE};
            use ::jni::JNIEnv;

            use crate::jni::boundary::guard;
            use crate::jni::poll_set::set;
            use crate::jni::session::{self, on, BridgedClient};
            use crate::jni::{optional_string, required_string};

            type C = $client;

            /// Releases a handle (0 is ignored): once, with no call in flight.
            #[export_name = concat!("Java_dev_tether_internal_", $bridge, "_free")]
            pub extern "system" fn free<'l>(
                mut env: JNIEnv<'l>,
                _class: JClass<'l>,
                handle: jlong,
            ) {
                guard(&mut env, (), |_| {
                    // SAFETY: Kotlin frees once, after every other call on
                    // this handle has returned (its in-flight counter).
                    unsafe { session::free::<C>(handle) };
                    Ok(())
                })
            }

            #[export_name = concat!("Java_dev_tether_internal_", $bridge, "_close")]
            pub extern "system" fn close<'l>(
                mut env: JNIEnv<'l>,
                _class: JClass<'l>,
                handle: jlong,
            ) {
                on::<C, _>(&mut env, handle, (), |_, c| Ok(BridgedClient::close(c)?))
            }

            #[export_name = concat!("Java_dev_tether_internal_", $bridge, "_pause")]
            pub extern "system" fn pause<'l>(
                mut env: JNIEnv<'l>,
                _class: JClass<'l>,
                handle: jlong,
            ) {
                on::<C, _>(&mut env, handle, (), |_, c| Ok(c.session().pause()?))
            }

            #[export_name = concat!("Java_dev_tether_internal_", $bridge, "_resume")]
            pub extern "system" fn resume<'l>(
                mut env: JNIEnv<'l>,
                _class: JClass<'l>,
                handle: jlong,
            ) {
                on::<C, _>(&mut env, handle, (), |_, c| Ok(c.session().resume()?))
            }

            #[export_name = concat!("Java_dev_tether_internal_", $bridge, "_networkChanged")]
            pub extern "system" fn network_changed<'l>(
                mut env: JNIEnv<'l>,
                _class: JClass<'l>,
                handle: jlong,
                available: jboolean,
            ) {
                on::<C, _>(&mut env, handle, (), |_, c| {
                    Ok(c.session().network_changed(available != JNI_FALSE)?)
                })
            }

            #[export_name = concat!("Java_dev_tether_internal_", $bridge, "_reconnect")]
            pub extern "system" fn reconnect<'l>(
                mut env: JNIEnv<'l>,
                _class: JClass<'l>,
                handle: jlong,
            ) {
                on::<C, _>(&mut env, handle, (), |_, c| Ok(c.session().reconnect()?))
            }

            #[export_name = concat!("Java_dev_tether_internal_", $bridge, "_setHeader")]
            pub extern "system" fn set_header<'l>(
                mut env: JNIEnv<'l>,
                _class: JClass<'l>,
                handle: jlong,
                name: JString<'l>,
                value: JString<'l>,
            ) {
                on::<C, _>(&mut env, handle, (), |env, c| {
                    let name = required_string(env, &name, "name")?;
                    let value = optional_string(env, &value)?;
                    Ok(BridgedClient::set_header(c, &name, value.as_deref())?)
                })
            }

            /// Adds the client to the process's poll set, armed, as `token`.
            #[export_name = concat!("Java_dev_tether_internal_", $bridge, "_pollSetAdd")]
            pub extern "system" fn poll_set_add<'l>(
                mut env: JNIEnv<'l>,
                _class: JClass<'l>,
                poll_set: jlong,
                handle: jlong,
                token: jlong,
            ) {
                on::<C, _>(&mut env, handle, (), |_, c| {
                    // SAFETY: the set lives for the process.
                    let poll_set = unsafe { set(poll_set)? };
                    Ok(poll_set.add(c.session(), session::token(token)?)?)
                })
            }

            #[export_name = concat!("Java_dev_tether_internal_", $bridge, "_pollSetRearm")]
            pub extern "system" fn poll_set_rearm<'l>(
                mut env: JNIEnv<'l>,
                _class: JClass<'l>,
                poll_set: jlong,
                handle: jlong,
            ) {
                on::<C, _>(&mut env, handle, (), |_, c| {
                    // SAFETY: the set lives for the process.
                    let poll_set = unsafe { set(poll_set)? };
                    Ok(poll_set.rearm(c.session())?)
                })
            }

            /// Removes the client; on return no wait uses it (it may be freed).
            #[export_name = concat!("Java_dev_tether_internal_", $bridge, "_pollSetRemove")]
            pub extern "system" fn poll_set_remove<'l>(
                mut env: JNIEnv<'l>,
                _class: JClass<'l>,
                poll_set: jlong,
                handle: jlong,
            ) {
                on::<C, _>(&mut env, handle, (), |_, c| {
                    // SAFETY: the set lives for the process.
                    let poll_set = unsafe { set(poll_set)? };
                    Ok(poll_set.remove(c.session())?)
                })
            }
        }
    };
}

session_exports!(
    socket_io_exports,
    "SioBridge",
    crate::socketio::SocketIoClient
);
session_exports!(sse_exports, "SseBridge", crate::client::SseClient);
