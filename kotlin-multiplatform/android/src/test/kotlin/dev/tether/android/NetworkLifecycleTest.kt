package dev.tether.android

import android.app.Application
import android.net.ConnectivityManager
import android.net.Network
import android.net.NetworkCapabilities
import android.os.Looper
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.RobolectricTestRunner
import org.robolectric.RuntimeEnvironment
import org.robolectric.Shadows.shadowOf
import org.robolectric.shadows.ShadowNetwork
import org.robolectric.shadows.ShadowNetworkCapabilities

/** The default network's validated, unblocked connectivity as networkChanged calls. */
@RunWith(RobolectricTestRunner::class)
class NetworkLifecycleTest {
    private val application: Application = RuntimeEnvironment.getApplication()
    private val connectivity = application.getSystemService(ConnectivityManager::class.java)
    private val target = RecordingTarget()
    private var binding: TetherLifecycle? = null
    private val wifi = ShadowNetwork.newInstance(100)
    private val cellular = ShadowNetwork.newInstance(101)

    @After
    fun unbind() {
        binding?.close()
    }

    /** Binds, and returns the callback the binding registered (the shadow calls none by itself). */
    private fun bind(): ConnectivityManager.NetworkCallback {
        binding = TetherLifecycle.bind(application, target, callbackExecutor = onTheCallingThread)
        return shadowOf(connectivity).networkCallbacks.single()
    }

    private fun capabilities(validated: Boolean): NetworkCapabilities {
        val caps = ShadowNetworkCapabilities.newInstance()
        shadowOf(caps).addCapability(NetworkCapabilities.NET_CAPABILITY_INTERNET)
        if (validated) shadowOf(caps).addCapability(NetworkCapabilities.NET_CAPABILITY_VALIDATED)
        return caps
    }

    /** What the system sends for a (new) default network. */
    private fun ConnectivityManager.NetworkCallback.becomesDefault(network: Network, validated: Boolean) {
        onAvailable(network)
        onCapabilitiesChanged(network, capabilities(validated))
        onBlockedStatusChanged(network, false)
    }

    @Test
    fun `a validated default network is what the core assumes, no call`() {
        bind().becomesDefault(wifi, validated = true)
        assertEquals(emptyList<String>(), target.calls)
    }

    @Test
    fun `losing the default network and getting one back`() {
        val callback = bind()
        callback.becomesDefault(wifi, validated = true)
        callback.onLost(wifi)
        assertEquals(listOf("network:false"), target.calls)
        // Connected, but not validated yet: still no internet.
        callback.becomesDefault(cellular, validated = false)
        assertEquals(listOf("network:false"), target.calls)
        callback.onCapabilitiesChanged(cellular, capabilities(validated = true))
        assertEquals(listOf("network:false", "network:true"), target.calls)
    }

    @Test
    fun `a captive portal or a dead uplink loses validation`() {
        val callback = bind()
        callback.becomesDefault(wifi, validated = true)
        callback.onCapabilitiesChanged(wifi, capabilities(validated = false))
        callback.onCapabilitiesChanged(wifi, capabilities(validated = false))
        callback.onCapabilitiesChanged(wifi, capabilities(validated = true))
        callback.onCapabilitiesChanged(wifi, capabilities(validated = true))
        assertEquals(listOf("network:false", "network:true"), target.calls)
    }

    @Test
    fun `a switch from wifi to cellular is no loss, even when the old network's loss comes late`() {
        val callback = bind()
        callback.becomesDefault(wifi, validated = true)
        callback.becomesDefault(cellular, validated = true)
        callback.onLost(wifi)
        assertEquals(emptyList<String>(), target.calls)
        callback.onLost(cellular)
        assertEquals(listOf("network:false"), target.calls)
    }

    @Test
    fun `a network blocked for the app (data saver, background restrictions) is unavailable`() {
        val callback = bind()
        callback.becomesDefault(wifi, validated = true)
        callback.onBlockedStatusChanged(wifi, true)
        callback.onBlockedStatusChanged(wifi, false)
        assertEquals(listOf("network:false", "network:true"), target.calls)
    }

    @Test
    fun `no default network at all when binding is reported at once`() {
        shadowOf(connectivity).setDefaultNetworkActive(false)
        val callback = bind()
        shadowOf(Looper.getMainLooper()).idle()
        assertEquals(listOf("network:false"), target.calls)
        callback.becomesDefault(wifi, validated = true)
        assertEquals(listOf("network:false", "network:true"), target.calls)
    }

    @Test
    fun `close unregisters the callback`() {
        bind()
        binding!!.close()
        assertTrue(shadowOf(connectivity).networkCallbacks.isEmpty())
    }

    @Test
    fun `a callback the system delivered after close is ignored`() {
        val callback = bind()
        callback.becomesDefault(wifi, validated = true)
        binding!!.close()
        callback.onLost(wifi)
        assertEquals(emptyList<String>(), target.calls)
    }
}
