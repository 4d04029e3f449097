package nl.kring.mongolocal;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.CountDownLatch;

import org.h2.mvstore.MVStore;

import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.bson.Document;
import io.netty.channel.Channel;

/**
 * Kring's local MongoDB-protocol server: mongo-java-server on one H2 MVStore file.
 *
 * <pre>java -jar mongo-local.jar --port 27017 --file .data/mongo/kring.mv [--host 127.0.0.1] [--fsync]</pre>
 *
 * Two things differ from mongo-java-server as it comes:
 * <ul>
 * <li>it reports MongoDB 4.4 (wire version 9): PyMongo 4.x refuses wire version 8;</li>
 * <li>a write is committed to the file before it is acknowledged. H2 commits about once a
 * second by itself, so a {@code kill -9} lost up to the last second of acknowledged writes;
 * with a commit per write nothing acknowledged is lost when the process dies. {@code --fsync}
 * also forces the file to the disk before acknowledging (what MongoDB's {@code j: true}
 * promises against a power cut; the machine's page cache survives a killed process anyway).</li>
 * </ul>
 * SIGTERM closes the store cleanly.
 */
public final class Main {

    /** Commands that change data: committed before their answer goes out. */
    private static final Set<String> WRITES = Set.of(
            "insert", "update", "delete", "findandmodify", "createindexes", "dropindexes",
            "drop", "dropdatabase", "create", "renamecollection");

    /** MongoDB 4.4: the oldest server PyMongo 4.x accepts. */
    private static final MongoVersion MONGO_4_4 = new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(4, 4, 0);
        }

        @Override
        public int getWireVersion() {
            return 9;
        }
    };

    private Main() {
    }

    static final class CommittingBackend extends H2Backend {
        private final boolean fsync;

        CommittingBackend(MVStore store, boolean fsync) {
            super(store);
            this.fsync = fsync;
        }

        @Override
        public Document handleCommand(Channel channel, String database, String command, Document query) {
            try {
                return super.handleCommand(channel, database, command, query);
            } finally {
                if (WRITES.contains(command.toLowerCase(Locale.ROOT))) {
                    MVStore store = getMvStore();
                    // commit() waits for a commit another thread is running, then writes what
                    // is still unsaved: concurrent writers share commits.
                    store.commit();
                    if (fsync) {
                        store.sync();
                    }
                }
            }
        }
    }

    public static void main(String[] args) throws Exception {
        String host = "127.0.0.1";
        int port = 27017;
        String file = null;
        boolean fsync = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--host" -> host = args[++i];
                case "--port" -> port = Integer.parseInt(args[++i]);
                case "--file" -> file = args[++i];
                case "--fsync" -> fsync = true;
                default -> {
                    System.err.println("mongo-local: unknown argument " + args[i]);
                    System.exit(2);
                }
            }
        }
        if (file == null) {
            System.err.println("mongo-local: --file <path of the data file> is required");
            System.exit(2);
        }
        Path path = Path.of(file).toAbsolutePath();
        Files.createDirectories(path.getParent());

        MVStore store = new MVStore.Builder().fileName(path.toString()).open();
        CommittingBackend backend = new CommittingBackend(store, fsync);
        backend.version(MONGO_4_4);
        MongoServer server = new MongoServer(backend);
        server.bind(host, port);

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdownNow();
            backend.close(); // commits and closes the file
            System.out.println("mongo-local: stopped, data file closed");
            stopped.countDown();
        }, "mongo-local-shutdown"));
        System.out.printf("mongo-local: listening on %s:%d, data in %s%s%n",
                host, port, path, fsync ? ", fsync per write" : "");
        stopped.await();
    }
}
