//! The JNI boundary: every export runs its body through [`guard`], so an
//! `Err` or a panic becomes a thrown `dev.tether.internal.NativeException`
//! (status code + message), never an unwind into the JVM.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ::jni::objects::{JThrowable, JValue};
use ::jni::JNIEnv;

use crate::error::Error;

/// The Kotlin class thrown for every failure (`status`, `message`).
const EXCEPTION_CLASS: &str = "dev/tether/internal/NativeException";

/// Why an export failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A core error: thrown as `NativeException(status, message)`.
    Core(Error),
    /// A Java exception is already pending (thrown by a JNI call): leave
    /// it to propagate as it is.
    Java,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Core(error)
    }
}

impl From<::jni::errors::Error> for Failure {
    fn from(error: ::jni::errors::Error) -> Self {
        match error {
            ::jni::errors::Error::JavaException => Failure::Java,
            other => Failure::Core(Error::Internal(format!("JNI call failed: {other}"))),
        }
    }
}

/// Runs `body`; on `Err` or panic, throws into the JVM and returns
/// `fallback` (which Kotlin never sees: the exception wins).
pub(crate) fn guard<'local, R>(
    env: &mut JNIEnv<'local>,
    fallback: R,
    body: impl FnOnce(&mut JNIEnv<'local>) -> Result<R, Failure>,
) -> R {
    let outcome = catch_unwind(AssertUnwindSafe(|| body(&mut *env)));
    let error = match outcome {
        Ok(Ok(value)) => return value,
        Ok(Err(Failure::Java)) => return fallback,
        Ok(Err(Failure::Core(error))) => error,
        Err(payload) => Error::from_panic(&*payload),
    };
    throw(env, &error);
    fallback
}

/// Throws `NativeException(error.status(), error.to_string())`, unless an
/// exception is already pending. Failing to throw (class missing, out of
/// memory) leaves that JVM error pending instead, which is as loud.
pub(crate) fn throw(env: &mut JNIEnv<'_>, error: &Error) {
    if env.exception_check().unwrap_or(true) {
        return;
    }
    let Ok(message) = env.new_string(error.to_string()) else {
        return;
    };
    let Ok(exception) = env.new_object(
        EXCEPTION_CLASS,
        "(ILjava/lang/String;)V",
        &[JValue::Int(error.status()), JValue::Object(&message)],
    ) else {
        return;
    };
    let _ = env.throw(JThrowable::from(exception));
}
