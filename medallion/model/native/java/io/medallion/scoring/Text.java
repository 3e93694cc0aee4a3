package io.medallion.scoring;

/** How medallion's texts write a double: a Java/Python hexadecimal literal, exact, or nan/inf/-inf. */
final class Text {
    private Text() {
    }

    static double number(String text) {
        switch (text) {
            case "nan": return Double.NaN;
            case "inf": return Double.POSITIVE_INFINITY;
            case "-inf": return Double.NEGATIVE_INFINITY;
            default: return Double.parseDouble(text);
        }
    }
}
