// A Java HTTP server (the JDK's com.sun.net.httpserver on a pool of worker
// threads, as servlet containers serve: thread per request), a third-party
// runtime weft traces from the socket layer alone. Routes:
//
//   GET /work          answers "hello"
//   GET /call?to=URL   calls URL with HttpURLConnection on the thread
//                      serving the request and answers its status
//
// java Server.java   prints "LISTEN <port>"
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;

public class Server {
  static String param(String query, String name) {
    if (query == null) return null;
    for (String kv : query.split("&")) {
      int i = kv.indexOf('=');
      if (i > 0 && kv.substring(0, i).equals(name)) {
        return URLDecoder.decode(kv.substring(i + 1), StandardCharsets.UTF_8);
      }
    }
    return null;
  }

  public static void main(String[] args) throws IOException {
    HttpServer s = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 512);
    s.setExecutor(Executors.newFixedThreadPool(16));
    s.createContext("/", ex -> {
      byte[] out = "hello".getBytes(StandardCharsets.UTF_8);
      String to = param(ex.getRequestURI().getRawQuery(), "to");
      if (ex.getRequestURI().getPath().equals("/call") && to != null) {
        int status = 0;
        try {
          HttpURLConnection c = (HttpURLConnection) URI.create(to).toURL().openConnection();
          status = c.getResponseCode();
          try (InputStream in = c.getInputStream()) {
            in.readAllBytes();
          }
        } catch (IOException e) {
          status = 0;
        }
        out = String.valueOf(status).getBytes(StandardCharsets.UTF_8);
      }
      ex.sendResponseHeaders(200, out.length);
      try (OutputStream o = ex.getResponseBody()) {
        o.write(out);
      }
    });
    s.start();
    System.out.println("LISTEN " + s.getAddress().getPort());
  }
}
