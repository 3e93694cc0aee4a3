package io.medallion.scoring;

import java.io.Serializable;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF2;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

/**
 * A snapshot of card profiles, looked up by (card, date) inside the JVM: the continuous
 * trigger's map-only features (no join is allowed there) without a Python worker per row.
 *
 * <p>The snapshot comes as text ({@link #parse}), written by
 * medallion.features.definition: a header {@code medallion-profiles 1} followed by the profile
 * columns as {@code name:double} or {@code name:string}, tab-separated; then one row per line,
 * {@code card<TAB>date<TAB>value...}, strings URL-encoded (UTF-8), doubles as Java/Python
 * hexadecimal literals, {@code -} for null. A card and date not in the snapshot get a row of
 * nulls: the features then treat the card as one without history.
 */
public final class ProfileLookup implements UDF2<String, String, Row>, Serializable {
    private static final long serialVersionUID = 1L;

    private final StructType schema;
    private final HashMap<String, Row> rows;
    private final Row missing;

    private ProfileLookup(StructType schema, HashMap<String, Row> rows) {
        this.schema = schema;
        this.rows = rows;
        this.missing = RowFactory.create(new Object[schema.size()]);
    }

    /** The snapshot the text describes; IllegalArgumentException names the first bad line. */
    public static ProfileLookup parse(String text) {
        String[] lines = text.split("\n");
        String[] head = lines[0].split("\t");
        if (head.length < 2 || !head[0].equals("medallion-profiles 1")) {
            throw new IllegalArgumentException("not a medallion-profiles 1 text: " + lines[0]);
        }
        StructField[] fields = new StructField[head.length - 1];
        boolean[] isDouble = new boolean[fields.length];
        for (int i = 0; i < fields.length; i++) {
            String[] column = head[i + 1].split(":");
            if (column.length != 2 || !(column[1].equals("double") || column[1].equals("string"))) {
                throw new IllegalArgumentException("column " + head[i + 1] + ": expected name:double or name:string");
            }
            isDouble[i] = column[1].equals("double");
            DataType type = isDouble[i] ? DataTypes.DoubleType : DataTypes.StringType;
            fields[i] = DataTypes.createStructField(column[0], type, true);
        }
        HashMap<String, Row> rows = new HashMap<>();
        for (int at = 1; at < lines.length; at++) {
            if (lines[at].isEmpty()) continue;
            String[] f = lines[at].split("\t", -1);
            if (f.length != fields.length + 2) {
                throw new IllegalArgumentException("line " + (at + 1) + ": " + f.length + " fields, expected " + (fields.length + 2));
            }
            Object[] values = new Object[fields.length];
            try {
                for (int i = 0; i < fields.length; i++) {
                    String value = f[i + 2];
                    if (value.equals("-")) continue;
                    values[i] = isDouble[i] ? (Object) Text.number(value) : decode(value);
                }
            } catch (NumberFormatException bad) {
                throw new IllegalArgumentException("line " + (at + 1) + ": " + bad.getMessage(), bad);
            }
            rows.put(key(decode(f[0]), f[1]), RowFactory.create(values));
        }
        return new ProfileLookup(DataTypes.createStructType(fields), rows);
    }

    private static String key(String card, String date) {
        return card + "\u0000" + date;
    }

    private static String decode(String text) {
        return URLDecoder.decode(text, StandardCharsets.UTF_8);
    }

    /** This snapshot as a Spark function of (card, date as yyyy-MM-dd): the profile struct. */
    public UserDefinedFunction function() {
        return functions.udf(this, schema).withName("medallion_profile");
    }

    @Override
    public Row call(String card, String date) {
        if (card == null || date == null) return missing;
        Row found = rows.get(key(card, date));
        return found != null ? found : missing;
    }
}
