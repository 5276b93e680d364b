import org.junit.runner.JUnitCore
import org.junit.runner.Request
import kotlin.system.exitProcess

/** Runs every suite; prints `kotlin: N passed, N failed, N skipped`; exits 1 on a failure or when nothing ran. */
fun main() {
    val classes = arrayOf(
        SignerTest::class.java, VectorsTest::class.java, UnsignableVectorsTest::class.java, EndToEndTest::class.java,
        RetryTest::class.java, RateLimitedParseTest::class.java, RateLimitTest::class.java, PlatformKeyTest::class.java,
        GatewayTest::class.java, InterceptorFailureTest::class.java,
    )
    val r = JUnitCore().run(Request.classes(*classes))
    for (f in r.failures) {
        System.err.println("FAIL ${f.testHeader}: ${f.message}")
        System.err.println(f.trace)
    }
    val skipped = r.ignoreCount + r.assumptionFailureCount
    val passed = r.runCount - r.failureCount - r.assumptionFailureCount
    println("kotlin: $passed passed, ${r.failureCount} failed, $skipped skipped")
    exitProcess(if (r.wasSuccessful() && passed > 0) 0 else 1)
}
