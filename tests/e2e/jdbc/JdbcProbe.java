// What a JDBC-based BI tool (Metabase, Tableau, DBeaver) does on connect and query,
// through the PostgreSQL JDBC driver: run as a single-file program by
// tests/e2e/test_sql_jdbc.py, which checks its output against GraphQL.
// Usage: java -cp postgresql.jar JdbcProbe.java PORT KEY
import java.sql.*;
import java.util.*;

public class JdbcProbe {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/custview?sslmode=disable";
        Properties props = new Properties();
        props.setProperty("user", "bi");
        props.setProperty("password", args[1]);
        try (Connection conn = DriverManager.getConnection(url, props)) {
            DatabaseMetaData meta = conn.getMetaData();
            System.out.println("product\t" + meta.getDatabaseProductName() + "\t"
                + meta.getDatabaseMajorVersion());
            try (ResultSet rs = meta.getSchemas()) {
                while (rs.next()) System.out.println("schema\t" + rs.getString("TABLE_SCHEM"));
            }
            try (ResultSet rs = meta.getTables(null, "public", "%", new String[] {"TABLE", "VIEW"})) {
                while (rs.next()) {
                    System.out.println("table\t" + rs.getString("TABLE_NAME") + "\t"
                        + rs.getString("TABLE_TYPE"));
                }
            }
            try (ResultSet rs = meta.getPrimaryKeys(null, "public", "customers")) {
                while (rs.next()) System.out.println("primary-key\t" + rs.getString("COLUMN_NAME"));
            }
            try (ResultSet rs = meta.getColumns(null, "public", "customers", "%")) {
                while (rs.next()) {
                    System.out.println("column\t" + rs.getString("COLUMN_NAME") + "\t"
                        + rs.getString("TYPE_NAME"));
                }
            }
            // a cursor read, as tools fetch big results: autocommit off and a fetch size
            conn.setAutoCommit(false);
            try (PreparedStatement st = conn.prepareStatement(
                    "SELECT id, country, lifetime_value FROM customers WHERE country = ? ORDER BY id")) {
                st.setFetchSize(25);
                st.setString(1, "DE");
                try (ResultSet rs = st.executeQuery()) {
                    ResultSetMetaData rsm = rs.getMetaData();
                    for (int i = 1; i <= rsm.getColumnCount(); i++) {
                        System.out.println("result-column\t" + rsm.getColumnLabel(i) + "\t"
                            + rsm.getColumnTypeName(i));
                    }
                    while (rs.next()) {
                        System.out.println("row\t" + rs.getString(1) + "\t" + rs.getString(2) + "\t"
                            + rs.getBigDecimal(3));
                    }
                }
            }
            conn.commit();
            conn.setAutoCommit(true);
            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery(
                     "SELECT country, count(*) AS n FROM customers GROUP BY country ORDER BY country")) {
                while (rs.next()) {
                    System.out.println("group\t" + rs.getString(1) + "\t" + rs.getLong(2));
                }
            }
            try (Statement st = conn.createStatement()) {
                st.executeQuery("DELETE FROM customers");
                System.out.println("write\taccepted");
            } catch (SQLException e) {
                System.out.println("write\t" + e.getSQLState());
            }
        }
        props.setProperty("password", "not-a-key");
        try (Connection conn = DriverManager.getConnection(url, props)) {
            System.out.println("wrong-key\taccepted");
        } catch (SQLException e) {
            System.out.println("wrong-key\t" + e.getSQLState());
        }
    }
}
