package dev.tether.internal

import dev.tether.TetherError

/**
 * iOS and Linux: the binding through cinterop on include/tether.h is not written yet (see
 * the project's issues). Until it is, connecting on these targets fails with a typed error
 * instead of failing to link.
 */
internal actual fun platformBinding(): Binding = NotYetBound

private object NotYetBound : Binding {
    override fun open(url: String, optionsJson: String, sink: EventSink): NativeClient =
        throw TetherError.Internal("Tether's cinterop binding (nativeMain) is not in this build yet")

    override fun liveClients(): Long = 0

    override fun onUnreachable(owner: Any, action: () -> Unit) {}
}
