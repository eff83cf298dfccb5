/* A stand-in for the paxid binaries, used by deploy/test-image.sh to test the
 * image before the real binaries exist. Dynamically linked against glibc like
 * the real ones, so it exercises the same loader, libraries and NSS setup.
 *
 *   placeholder --sleep        wait until SIGTERM, then exit 0
 *   placeholder --whoami       print the user name of the effective uid
 *   placeholder --write PATH   create PATH and write to it
 *   placeholder NAME           resolve NAME with getaddrinfo, print addresses
 */
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void on_term(int sig) { (void)sig; _exit(0); }

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s --sleep | --whoami | --write PATH | NAME\n", argv[0]);
        return 2;
    }
    if (strcmp(argv[1], "--sleep") == 0) {
        /* As PID 1 a process gets no default SIGTERM action: handle it. */
        signal(SIGTERM, on_term);
        signal(SIGINT, on_term);
        for (;;) pause();
    }
    if (strcmp(argv[1], "--whoami") == 0) {
        struct passwd *pw = getpwuid(geteuid());
        if (pw == NULL) { fprintf(stderr, "uid %d has no passwd entry\n", (int)geteuid()); return 1; }
        printf("%s %d\n", pw->pw_name, (int)pw->pw_uid);
        return 0;
    }
    if (strcmp(argv[1], "--write") == 0 && argc > 2) {
        FILE *f = fopen(argv[2], "w");
        if (f == NULL || fputs("ok\n", f) < 0 || fclose(f) != 0) { perror(argv[2]); return 1; }
        printf("wrote %s\n", argv[2]);
        return 0;
    }
    struct addrinfo hints, *res, *ai;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(argv[1], NULL, &hints, &res);
    if (rc != 0) { fprintf(stderr, "%s: %s\n", argv[1], gai_strerror(rc)); return 1; }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        char host[NI_MAXHOST];
        if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host, NULL, 0, NI_NUMERICHOST) == 0)
            printf("%s %s\n", argv[1], host);
    }
    freeaddrinfo(res);
    return 0;
}
