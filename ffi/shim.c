/* Exports DPDK's static-inline fast-path functions as real symbols for Rust. */
#include <rte_config.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_thash.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <rte_log.h>
#include "shim.h"

uint16_t rvs_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{ return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts); }
uint16_t rvs_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{ return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts); }
struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }
int rvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count)
{ return rte_pktmbuf_alloc_bulk(mp, mbufs, count); }
void rvs_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
void rvs_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count) { rte_pktmbuf_free_bulk(mbufs, count); }
char *rvs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }
char *rvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }
char *rvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
int rvs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }
void *rvs_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }
uint16_t rvs_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }
uint32_t rvs_pktmbuf_pkt_len(const struct rte_mbuf *m) { return rte_pktmbuf_pkt_len(m); }
uint16_t rvs_pktmbuf_data_len(const struct rte_mbuf *m) { return rte_pktmbuf_data_len(m); }
uint16_t rvs_mbuf_refcnt_read(const struct rte_mbuf *m) { return rte_mbuf_refcnt_read(m); }
void rvs_mbuf_refcnt_set(struct rte_mbuf *m, uint16_t v) { rte_mbuf_refcnt_set(m, v); }
uint16_t rvs_mbuf_refcnt_update(struct rte_mbuf *m, int16_t v) { return rte_mbuf_refcnt_update(m, v); }
uint16_t rvs_mbuf_port(const struct rte_mbuf *m) { return m->port; }
unsigned int rvs_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table, unsigned int n)
{ return rte_ring_enqueue_burst(r, obj_table, n, NULL); }
unsigned int rvs_ring_dequeue_burst(struct rte_ring *r, void **obj_table, unsigned int n)
{ return rte_ring_dequeue_burst(r, obj_table, n, NULL); }
unsigned int rvs_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }
unsigned int rvs_mempool_in_use_count(const struct rte_mempool *mp) { return rte_mempool_in_use_count(mp); }
unsigned int rvs_lcore_id(void) { return rte_lcore_id(); }
uint64_t rvs_rdtsc(void) { return rte_rdtsc(); }
uint64_t rvs_get_tsc_hz(void) { return rte_get_tsc_hz(); }
int rvs_errno(void) { return rte_errno; }
uint32_t rvs_softrss(uint32_t *input_tuple, uint32_t input_len, const uint8_t *rss_key)
{ return rte_softrss(input_tuple, input_len, rss_key); }
uint32_t rvs_softrss_be(uint32_t *input_tuple, uint32_t input_len, const uint8_t *rss_key)
{ return rte_softrss_be(input_tuple, input_len, rss_key); }
void rvs_convert_rss_key(const uint32_t *orig, uint32_t *targ, int len)
{ rte_convert_rss_key(orig, targ, len); }

static FILE *capture_stream;
static char *capture_buf;
static size_t capture_len;

int rvs_log_capture_begin(void)
{
	if (capture_stream != NULL)
		return -1;
	capture_stream = open_memstream(&capture_buf, &capture_len);
	if (capture_stream == NULL)
		return -1;
	return rte_openlog_stream(capture_stream);
}

size_t rvs_log_capture_end(char *out, size_t cap)
{
	size_t n = 0;
	if (capture_stream == NULL)
		return 0;
	rte_openlog_stream(NULL);
	fclose(capture_stream);
	capture_stream = NULL;
	if (capture_buf != NULL) {
		n = capture_len < cap ? capture_len : cap;
		if (out != NULL && n > 0)
			memcpy(out, capture_buf, n);
		free(capture_buf);
		capture_buf = NULL;
	}
	capture_len = 0;
	return n;
}
