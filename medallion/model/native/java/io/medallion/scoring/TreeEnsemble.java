package io.medallion.scoring;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;

/**
 * A compiled gradient-boosted tree ensemble, evaluated inside the JVM: the raw score (baseline
 * plus each tree's leaf, summed in the trees' order, as scikit-learn adds them) of one row of
 * encoded inputs.
 *
 * <p>Why a function over arrays rather than the trees as nested CASE WHEN: Spark analyses and
 * optimises a query in time that grows with its expression, and a model's trees are thousands
 * of nodes, paid by the driver for every query (each micro-batch, each night). Here the plan
 * holds one node whatever the model's size, and the walk is a loop the JIT compiles once.
 *
 * <p>The model comes as text ({@link #parse}), written by NativeModel.walker_text: a header
 * {@code medallion-trees 1 <inputs> <baseline>}, then per tree {@code T <nodes>} followed by its
 * nodes, each one of
 * <ul>
 *   <li>{@code L <value>}: a leaf;</li>
 *   <li>{@code N <input> <threshold> <missingLeft> <left> <right>}: left when the input is at or
 *       below the threshold, or NaN and missing values go left;</li>
 *   <li>{@code C <input> <leftWhenIn> <left> <right> <code>...}: left when the input is (or,
 *       with leftWhenIn 0, is not) one of the codes.</li>
 * </ul>
 * Children are indices within the tree; doubles are Java/Python hexadecimal literals, exact.
 */
public final class TreeEnsemble implements UDF1<Row, Double>, Serializable {
    private static final long serialVersionUID = 1L;
    private static final byte LEAF = 0, NUMERIC = 1, CATEGORICAL = 2;

    private final int inputs;
    private final double baseline;
    private final int[] roots;
    private final byte[] kind;
    private final int[] input;
    private final double[] threshold;   // a split's threshold, a leaf's value
    private final boolean[] leftFlag;    // numeric: NaN goes left; categorical: left when in the codes
    private final int[] left;
    private final int[] right;
    private final int[] codesFrom;
    private final int[] codesTo;
    private final double[] codes;

    private TreeEnsemble(int inputs, double baseline, int[] roots, byte[] kind, int[] input,
                         double[] threshold, boolean[] leftFlag, int[] left, int[] right,
                         int[] codesFrom, int[] codesTo, double[] codes) {
        this.inputs = inputs;
        this.baseline = baseline;
        this.roots = roots;
        this.kind = kind;
        this.input = input;
        this.threshold = threshold;
        this.leftFlag = leftFlag;
        this.left = left;
        this.right = right;
        this.codesFrom = codesFrom;
        this.codesTo = codesTo;
        this.codes = codes;
    }

    /** The ensemble the text describes; IllegalArgumentException names the first bad line. */
    public static TreeEnsemble parse(String text) {
        String[] lines = text.split("\n");
        String[] head = lines[0].trim().split(" ");
        if (head.length != 4 || !head[0].equals("medallion-trees") || !head[1].equals("1")) {
            throw new IllegalArgumentException("not a medallion-trees 1 text: " + lines[0]);
        }
        int inputs = Integer.parseInt(head[2]);
        double baseline = Text.number(head[3]);
        int total = 0;
        for (String line : lines) {
            if (!line.isEmpty() && line.charAt(0) != 'T' && line.charAt(0) != 'm') total++;
        }
        List<Integer> roots = new ArrayList<>();
        byte[] kind = new byte[total];
        int[] input = new int[total];
        double[] threshold = new double[total];
        boolean[] leftFlag = new boolean[total];
        int[] left = new int[total];
        int[] right = new int[total];
        int[] codesFrom = new int[total];
        int[] codesTo = new int[total];
        List<Double> codes = new ArrayList<>();
        int node = 0;
        int root = 0;
        int end = 0;   // one past the current tree's last node, from its "T <nodes>" line
        for (int at = 1; at < lines.length; at++) {
            String line = lines[at].trim();
            if (line.isEmpty()) continue;
            String[] f = line.split(" ");
            try {
                if (!f[0].equals("T") && node >= end) {
                    throw new IllegalArgumentException("more nodes than the tree's T line declares");
                }
                switch (f[0]) {
                    case "T":
                        if (node != end) {
                            throw new IllegalArgumentException("the tree before has " + (node - root)
                                    + " nodes, its T line declares " + (end - root));
                        }
                        root = node;
                        end = root + Integer.parseInt(f[1]);
                        if (end <= root) throw new IllegalArgumentException("a tree needs a node");
                        roots.add(root);
                        break;
                    case "L":
                        kind[node] = LEAF;
                        threshold[node] = Text.number(f[1]);
                        node++;
                        break;
                    case "N":
                        kind[node] = NUMERIC;
                        input[node] = child(f[1], inputs);
                        threshold[node] = Text.number(f[2]);
                        leftFlag[node] = f[3].equals("1");
                        left[node] = within(node, root + Integer.parseInt(f[4]), end);
                        right[node] = within(node, root + Integer.parseInt(f[5]), end);
                        node++;
                        break;
                    case "C":
                        kind[node] = CATEGORICAL;
                        input[node] = child(f[1], inputs);
                        leftFlag[node] = f[2].equals("1");
                        left[node] = within(node, root + Integer.parseInt(f[3]), end);
                        right[node] = within(node, root + Integer.parseInt(f[4]), end);
                        codesFrom[node] = codes.size();
                        for (int k = 5; k < f.length; k++) codes.add(Text.number(f[k]));
                        codesTo[node] = codes.size();
                        node++;
                        break;
                    default:
                        throw new IllegalArgumentException("unknown node kind " + f[0]);
                }
            } catch (RuntimeException bad) {
                throw new IllegalArgumentException("line " + (at + 1) + " (" + line + "): " + bad.getMessage(), bad);
            }
        }
        if (node != end) {
            throw new IllegalArgumentException("the last tree has " + (node - root)
                    + " nodes, its T line declares " + (end - root));
        }
        double[] pool = new double[codes.size()];
        for (int k = 0; k < pool.length; k++) pool[k] = codes.get(k);
        return new TreeEnsemble(inputs, baseline, roots.stream().mapToInt(Integer::intValue).toArray(),
                kind, input, threshold, leftFlag, left, right, codesFrom, codesTo, pool);
    }

    /**
     * A child's index, checked to come after its node and inside its tree (as scikit-learn
     * numbers them): every walk then ends at a leaf of the tree it started in.
     */
    private static int within(int node, int child, int end) {
        if (child <= node || child >= end) {
            throw new IllegalArgumentException("node " + node + ": children must come after it, inside its tree");
        }
        return child;
    }

    private static int child(String text, int inputs) {
        int value = Integer.parseInt(text);
        if (value < 0 || value >= inputs) throw new IllegalArgumentException("input " + value + " of " + inputs);
        return value;
    }

    /** This ensemble as a Spark function of one struct of the encoded inputs: the raw score. */
    public UserDefinedFunction function() {
        return functions.udf(this, DataTypes.DoubleType).withName("medallion_trees");
    }

    /** The raw score of one row: {@code row} holds the encoded inputs as doubles, in order. */
    @Override
    public Double call(Row row) {
        double[] x = new double[inputs];
        for (int i = 0; i < inputs; i++) x[i] = row.isNullAt(i) ? Double.NaN : row.getDouble(i);
        return raw(x);
    }

    /** The raw score of encoded inputs. */
    public double raw(double[] x) {
        double sum = baseline;
        for (int root : roots) {
            int n = root;
            while (kind[n] != LEAF) {
                double value = x[input[n]];
                boolean goLeft;
                if (kind[n] == NUMERIC) {
                    goLeft = value <= threshold[n] || (leftFlag[n] && Double.isNaN(value));
                } else {
                    boolean member = false;
                    for (int k = codesFrom[n]; k < codesTo[n]; k++) {
                        if (codes[k] == value) {
                            member = true;
                            break;
                        }
                    }
                    goLeft = member == leftFlag[n];
                }
                n = goLeft ? left[n] : right[n];
            }
            sum += threshold[n];
        }
        return sum;
    }
}
