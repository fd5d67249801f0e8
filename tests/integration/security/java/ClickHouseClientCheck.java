import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

/**
 * ClickHouse's official JDBC driver (jdbc-v2 over client-v2) with its DEFAULT settings - native LZ4 block
 * compression of responses included - against the local endpoint: DDL, a prepared batch insert, a select, a
 * prepared select and an error. Prints one line per step; the Python test checks them.
 */
public class ClickHouseClientCheck {
    public static void main(String[] args) throws Exception {
        String url = args[0];
        String table = args[3];
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        try (Connection conn = DriverManager.getConnection(url, props)) {
            try (Statement st = conn.createStatement()) {
                st.execute("CREATE TABLE " + table
                        + " (id UInt32, name String, score Float64) ENGINE = MergeTree ORDER BY id");
            }
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO " + table + " VALUES (?, ?, ?)")) {
                for (int i = 0; i < 1000; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "name-" + i);
                    ps.setDouble(3, i * 0.5);
                    ps.addBatch();
                }
                System.out.println("inserted " + ps.executeBatch().length);
            }
            try (Statement st = conn.createStatement();
                    ResultSet rs = st.executeQuery("SELECT count(), sum(id) FROM " + table)) {
                rs.next();
                System.out.println("count " + rs.getLong(1) + " sum " + rs.getLong(2));
            }
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT name, score FROM " + table + " WHERE id = ?")) {
                ps.setInt(1, 42);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    System.out.println("row " + rs.getString(1) + " " + rs.getDouble(2));
                }
            }
            try (Statement st = conn.createStatement();
                    ResultSet rs = st.executeQuery("SELECT number FROM numbers(300000)")) {
                long n = 0;
                while (rs.next()) {
                    n += rs.getLong(1);
                }
                System.out.println("streamed " + n);
            }
            try (Statement st = conn.createStatement()) {
                st.executeQuery("SELECT * FROM no_such_table_here");
                System.out.println("error none");
            } catch (SQLException e) {
                System.out.println("error " + e.getMessage().replace('\n', ' '));
            }
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT 1")) {
                rs.next();
                System.out.println("after-error " + rs.getInt(1));
            }
        }
        // Not a default, but the other half of the format: request bodies in native LZ4 blocks (decompress=1).
        props.setProperty("decompress", "true"); // client-v2: COMPRESS_CLIENT_REQUEST
        try (Connection conn = DriverManager.getConnection(url, props)) {
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO " + table + " VALUES (?, ?, ?)")) {
                for (int i = 1000; i < 1500; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "lz4-" + i);
                    ps.setDouble(3, i);
                    ps.addBatch();
                }
                ps.executeBatch();
            }
            try (Statement st = conn.createStatement();
                    ResultSet rs = st.executeQuery("SELECT count() FROM " + table + " WHERE name LIKE 'lz4-%'")) {
                rs.next();
                System.out.println("compressed-insert " + rs.getLong(1));
            }
        }
    }
}
