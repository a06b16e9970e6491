package dev.tether.android

import android.net.ConnectivityManager
import android.net.Network
import android.net.NetworkCapabilities

/**
 * Follows the system's default network and reports, on change only, whether it can reach
 * the internet: validated (NET_CAPABILITY_VALIDATED: a captive portal or a dead uplink is
 * not) and not blocked for this app (data saver, background restrictions).
 *
 * The default starts as available, which is what the core assumes before any hint.
 * Registered with a handler of the main thread, so its callbacks are confined there.
 */
internal class DefaultNetworkTracker(
    private val onChange: (available: Boolean) -> Unit,
) : ConnectivityManager.NetworkCallback() {
    private var current: Network? = null
    private var validated = false
    private var blocked = false
    private var reported = true

    override fun onAvailable(network: Network) {
        // Not reported yet: capabilities (validated or not) follow at once.
        switchTo(network)
    }

    override fun onCapabilitiesChanged(network: Network, capabilities: NetworkCapabilities) {
        switchTo(network)
        validated = capabilities.hasCapability(NetworkCapabilities.NET_CAPABILITY_VALIDATED)
        report()
    }

    override fun onBlockedStatusChanged(network: Network, blocked: Boolean) {
        switchTo(network)
        this.blocked = blocked
        report()
    }

    override fun onLost(network: Network) {
        // A lost network that is no longer the default (the system switched already) is news to nobody.
        if (network != current) return
        current = null
        validated = false
        blocked = false
        report()
    }

    /** The system has no default network at all (when the binding is made). */
    fun noDefaultNetwork() {
        if (current == null) report()
    }

    private fun switchTo(network: Network) {
        if (network == current) return
        current = network
        validated = false
        blocked = false
    }

    private fun report() {
        val available = current != null && validated && !blocked
        if (available != reported) {
            reported = available
            onChange(available)
        }
    }
}
