package dev.tether.android

import android.app.Activity

/** A plain framework activity for ActivityController to drive. */
class TestActivity : Activity()

/** A second one, for hand-overs between activities. */
class OtherActivity : Activity()
