package dev.tether.internal

import dev.tether.TetherError

/** A minimal JSON writer for the options object (no dependency on a JSON library). */
internal class JsonWriter {
    private val out = StringBuilder()
    private var first = true

    fun obj(block: JsonWriter.() -> Unit) {
        out.append('{')
        first = true
        block()
        out.append('}')
        first = false
    }

    fun array(values: List<String>) {
        out.append('[')
        values.forEachIndexed { i, v ->
            if (i > 0) out.append(',')
            string(v)
        }
        out.append(']')
        first = false
    }

    fun field(name: String, value: JsonWriter.() -> Unit) {
        key(name)
        value()
    }

    fun field(name: String, value: String) = field(name) { string(value) }
    fun field(name: String, value: Long) = field(name) { out.append(value) }
    fun field(name: String, value: Boolean) = field(name) { out.append(value) }
    fun field(name: String, value: Double) = field(name) {
        // JSON has no NaN or infinity.
        if (!value.isFinite()) throw TetherError.InvalidArgument("options: $name must be a finite number, not $value")
        out.append(value)
    }

    private fun key(name: String) {
        if (!first) out.append(',')
        first = false
        string(name)
        out.append(':')
    }

    private fun string(s: String) {
        out.append('"')
        for (c in s) {
            when {
                c == '"' -> out.append("\\\"")
                c == '\\' -> out.append("\\\\")
                c == '\n' -> out.append("\\n")
                c == '\r' -> out.append("\\r")
                c == '\t' -> out.append("\\t")
                c < ' ' -> out.append("\\u").append(c.code.toString(16).padStart(4, '0'))
                else -> out.append(c)
            }
        }
        out.append('"')
    }

    override fun toString(): String = out.toString()
}
